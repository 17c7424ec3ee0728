//! Export of a trained policy for the host (being written).
