//! A cohort: the sequences decoded together, with their caches batched in one left-padded
//! tensor per layer.
//!
//! Row `r` holds `pads[r]` padding positions, then its real positions, up to `len`; the
//! attention mask is 0 on padding and 1 after it, so padding is never attended (its cached
//! values are zeros, and their attention weight underflows to exactly 0). Positions count
//! real tokens only, so a row's logits do not depend on how much padding its cohort gave it.
//!
//! Invariants: every row has at least one real position; `len` is the longest row (a
//! [`Cohort::gather`] re-pads to the longest row it keeps, so padding never accumulates);
//! the caches are `[rows, kv_heads, len, head_dim]`. Membership changes (a sequence joins,
//! finishes or is cancelled) re-pad by copying the caches once; steps in between append in
//! place through ONNX Runtime's presents.

use super::decoder::Caches;

pub struct Cohort {
    pub len: usize,
    pub pads: Vec<usize>,
    /// None when the cohort has no rows.
    pub caches: Option<Caches>,
}

impl Cohort {
    pub fn empty() -> Cohort {
        Cohort { len: 0, pads: Vec::new(), caches: None }
    }

    pub fn rows(&self) -> usize {
        self.pads.len()
    }

    /// Real (unpadded) positions of `row`.
    pub fn real_len(&self, row: usize) -> usize {
        self.len - self.pads[row]
    }

    /// The attention mask and position ids for one more token per row.
    pub fn step_inputs(&self) -> (Vec<i64>, Vec<i64>) {
        let width = self.len + 1;
        let mut mask = Vec::with_capacity(self.rows() * width);
        for &pad in &self.pads {
            mask.extend(std::iter::repeat_n(0, pad).chain(std::iter::repeat_n(1, width - pad)));
        }
        let positions = (0..self.rows()).map(|r| self.real_len(r) as i64).collect();
        (mask, positions)
    }

    /// After a step: the presents are the caches, one position longer.
    pub fn advance(&mut self, present: Caches) {
        self.len += 1;
        self.caches = Some(present);
    }

    /// A cohort of `picks` — `(source, row)` pairs, in the new row order — from `sources`,
    /// right-aligned to the longest picked row. `shape` is `(kv_heads, head_dim)`.
    pub fn gather(mut sources: Vec<Cohort>, picks: &[(usize, usize)], shape: (usize, usize)) -> Result<Cohort, String> {
        if picks.is_empty() {
            return Ok(Cohort::empty());
        }
        let len = picks.iter().map(|&(s, r)| sources[s].real_len(r)).max().unwrap_or(0);
        // Unchanged membership: keep the caches as they are.
        if sources.len() == 1
            && picks.len() == sources[0].rows()
            && picks.iter().enumerate().all(|(i, &(s, r))| s == 0 && r == i)
            && len == sources[0].len
        {
            return Ok(sources.swap_remove(0));
        }
        let (kv, hd) = shape;
        let pads: Vec<usize> = picks.iter().map(|&(s, r)| len - sources[s].real_len(r)).collect();
        let values = sources.iter().find_map(|c| c.caches.as_ref().map(Vec::len)).unwrap_or(0);
        let mut caches = Vec::with_capacity(values);
        for j in 0..values {
            let data: Vec<&[f32]> = sources
                .iter()
                .map(|c| match &c.caches {
                    Some(caches) => caches[j].try_extract_tensor::<f32>().map(|(_, d)| d).map_err(|e| e.to_string()),
                    None => Ok(&[][..]),
                })
                .collect::<Result<_, _>>()?;
            let mut out = vec![0f32; picks.len() * kv * len * hd];
            for (new_row, &(s, r)) in picks.iter().enumerate() {
                let source = &sources[s];
                let (old_len, real) = (source.len, source.real_len(r));
                let expected = source.rows() * kv * old_len * hd;
                if data[s].len() != expected {
                    return Err(format!("a cache holds {} values, expected {expected}", data[s].len()));
                }
                for h in 0..kv {
                    let from = ((r * kv + h) * old_len + source.pads[r]) * hd;
                    let to = ((new_row * kv + h) * len + pads[new_row]) * hd;
                    out[to..to + real * hd].copy_from_slice(&data[s][from..from + real * hd]);
                }
            }
            let shape = vec![picks.len() as i64, kv as i64, len as i64, hd as i64];
            let tensor = ort::value::Tensor::from_array((shape, out)).map_err(|e| e.to_string())?;
            caches.push(tensor.into_dyn());
        }
        Ok(Cohort { len, pads, caches: Some(caches) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn step_inputs_mask_padding_and_count_real_positions() {
        let c = Cohort { len: 3, pads: vec![0, 2], caches: None };
        let (mask, positions) = c.step_inputs();
        assert_eq!(mask, vec![1, 1, 1, 1, 0, 0, 1, 1]);
        assert_eq!(positions, vec![3, 1]);
    }
}
