//! The simulated world: a seeded knowledge graph of invented entities,
//! typed functional relations grouped into domains, and numeric attributes.
//!
//! Invariants: the same `WorldConfig` always yields the same world (ChaCha
//! seeded from `seed`; no iteration over hash maps); names and aliases are
//! unique across the whole world (case-insensitive); every relation is a
//! function (one object per subject), so every question has one answer.

use std::collections::{BTreeMap, HashSet};

use rand::seq::IndexedRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum EntityType {
    Person,
    City,
    Country,
    Company,
    River,
    Mountain,
    University,
    Band,
    Album,
    Novel,
    Element,
    Team,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Domain {
    Geography,
    Business,
    Arts,
    Science,
    Sports,
}

impl Domain {
    pub const ALL: [Domain; 5] = [Domain::Geography, Domain::Business, Domain::Arts, Domain::Science, Domain::Sports];

    pub fn name(self) -> &'static str {
        match self {
            Domain::Geography => "geography",
            Domain::Business => "business",
            Domain::Arts => "arts",
            Domain::Science => "science",
            Domain::Sports => "sports",
        }
    }
}

/// A typed functional relation: subject type -> object type, in a domain.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Relation {
    CityCountry,
    Capital,
    RiverCity,
    MountainCountry,
    Founder,
    Headquarters,
    Ceo,
    AlbumBand,
    BandCity,
    NovelAuthor,
    AlmaMater,
    UniversityCity,
    Discoverer,
    TeamCity,
    Coach,
    Birthplace,
}

impl Relation {
    pub const ALL: [Relation; 16] = [
        Relation::CityCountry,
        Relation::Capital,
        Relation::RiverCity,
        Relation::MountainCountry,
        Relation::Founder,
        Relation::Headquarters,
        Relation::Ceo,
        Relation::AlbumBand,
        Relation::BandCity,
        Relation::NovelAuthor,
        Relation::AlmaMater,
        Relation::UniversityCity,
        Relation::Discoverer,
        Relation::TeamCity,
        Relation::Coach,
        Relation::Birthplace,
    ];

    /// (subject type, object type, domain)
    pub fn signature(self) -> (EntityType, EntityType, Domain) {
        use {Domain::*, EntityType::*};
        match self {
            Relation::CityCountry => (City, Country, Geography),
            Relation::Capital => (Country, City, Geography),
            Relation::RiverCity => (River, City, Geography),
            Relation::MountainCountry => (Mountain, Country, Geography),
            Relation::Founder => (Company, Person, Business),
            Relation::Headquarters => (Company, City, Business),
            Relation::Ceo => (Company, Person, Business),
            Relation::AlbumBand => (Album, Band, Arts),
            Relation::BandCity => (Band, City, Arts),
            Relation::NovelAuthor => (Novel, Person, Arts),
            Relation::AlmaMater => (Person, University, Science),
            Relation::UniversityCity => (University, City, Science),
            Relation::Discoverer => (Element, Person, Science),
            Relation::TeamCity => (Team, City, Sports),
            Relation::Coach => (Team, Person, Sports),
            Relation::Birthplace => (Person, City, Geography),
        }
    }

    pub fn subject(self) -> EntityType {
        self.signature().0
    }

    pub fn object(self) -> EntityType {
        self.signature().1
    }

    pub fn domain(self) -> Domain {
        self.signature().2
    }
}

/// A numeric attribute, for comparison questions.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Attribute {
    BirthYear,
    HeightM,
    FoundedYear,
    LengthKm,
    Population,
}

impl Attribute {
    pub const ALL: [Attribute; 5] =
        [Attribute::BirthYear, Attribute::HeightM, Attribute::FoundedYear, Attribute::LengthKm, Attribute::Population];

    /// (entity type, domain, value range)
    pub fn signature(self) -> (EntityType, Domain, (i64, i64)) {
        match self {
            Attribute::BirthYear => (EntityType::Person, Domain::Science, (1850, 2000)),
            Attribute::HeightM => (EntityType::Mountain, Domain::Geography, (800, 8800)),
            Attribute::FoundedYear => (EntityType::Company, Domain::Business, (1800, 2020)),
            Attribute::LengthKm => (EntityType::River, Domain::Geography, (40, 6500)),
            Attribute::Population => (EntityType::City, Domain::Geography, (5_000, 9_000_000)),
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Entity {
    pub id: usize,
    pub kind: EntityType,
    pub name: String,
    /// Other names that refer to it (e.g. "Amsel" for "Amsel River").
    pub aliases: Vec<String>,
}

/// How to build a world.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WorldConfig {
    pub seed: u64,
    /// About this many entities in total.
    pub entities: usize,
}

impl Default for WorldConfig {
    fn default() -> Self {
        WorldConfig { seed: 7, entities: 2000 }
    }
}

/// The knowledge graph.
#[derive(Clone, Debug)]
pub struct World {
    pub config: WorldConfig,
    pub entities: Vec<Entity>,
    /// (relation, subject id) -> object id.
    pub facts: BTreeMap<(Relation, usize), usize>,
    /// (attribute, entity id) -> value.
    pub attributes: BTreeMap<(Attribute, usize), i64>,
    by_type: BTreeMap<EntityType, Vec<usize>>,
    by_name: BTreeMap<String, usize>,
}

/// Share of the world per entity type (sums to 2000 at the default size).
const SHARES: [(EntityType, usize); 12] = [
    (EntityType::Country, 40),
    (EntityType::City, 240),
    (EntityType::River, 80),
    (EntityType::Mountain, 80),
    (EntityType::Company, 200),
    (EntityType::Person, 700),
    (EntityType::University, 80),
    (EntityType::Band, 120),
    (EntityType::Album, 200),
    (EntityType::Novel, 150),
    (EntityType::Element, 40),
    (EntityType::Team, 70),
];

const ONSETS: [&str; 22] = [
    "b", "d", "k", "l", "m", "n", "p", "r", "s", "t", "v", "z", "br", "dr", "kr", "st", "tr", "gl", "f", "h", "sh",
    "th",
];
const VOWELS: [&str; 9] = ["a", "e", "i", "o", "u", "ai", "ei", "ou", "ia"];
const CODAS: [&str; 9] = ["", "", "", "n", "r", "s", "l", "k", "th"];

fn syllables(rng: &mut ChaCha8Rng, count: usize) -> String {
    let mut word = String::new();
    for _ in 0..count {
        word.push_str(ONSETS.choose(rng).unwrap_or(&"b"));
        word.push_str(VOWELS.choose(rng).unwrap_or(&"a"));
        word.push_str(CODAS.choose(rng).unwrap_or(&""));
    }
    let mut chars = word.chars();
    chars.next().map(|c| c.to_uppercase().chain(chars).collect()).unwrap_or_default()
}

impl World {
    pub fn generate(config: &WorldConfig) -> World {
        let mut rng = ChaCha8Rng::seed_from_u64(config.seed);
        let scale = config.entities.max(100) as f64 / 2000.0;
        let mut world = World {
            config: config.clone(),
            entities: Vec::new(),
            facts: BTreeMap::new(),
            attributes: BTreeMap::new(),
            by_type: BTreeMap::new(),
            by_name: BTreeMap::new(),
        };
        let mut taken: HashSet<String> = HashSet::new();
        for (kind, share) in SHARES {
            let count = ((share as f64 * scale).round() as usize).max(4);
            for _ in 0..count {
                let (name, aliases) = loop {
                    let candidate = Self::name_for(&mut rng, kind);
                    let all: Vec<String> =
                        std::iter::once(candidate.0.clone()).chain(candidate.1.iter().cloned()).collect();
                    if all.iter().all(|n| !taken.contains(&n.to_lowercase())) {
                        for n in &all {
                            taken.insert(n.to_lowercase());
                        }
                        break candidate;
                    }
                };
                let id = world.entities.len();
                world.by_type.entry(kind).or_default().push(id);
                world.by_name.insert(name.to_lowercase(), id);
                for a in &aliases {
                    world.by_name.insert(a.to_lowercase(), id);
                }
                world.entities.push(Entity { id, kind, name, aliases });
            }
        }
        // Cities belong to countries; each country's capital is one of its cities.
        let countries = world.of_type(EntityType::Country).to_vec();
        let cities = world.of_type(EntityType::City).to_vec();
        for (i, &city) in cities.iter().enumerate() {
            world.facts.insert((Relation::CityCountry, city), countries[i % countries.len()]);
        }
        for (i, &country) in countries.iter().enumerate() {
            world.facts.insert((Relation::Capital, country), cities[i]);
        }
        for relation in Relation::ALL {
            if matches!(relation, Relation::CityCountry | Relation::Capital) {
                continue;
            }
            let objects = world.of_type(relation.object()).to_vec();
            for &subject in &world.of_type(relation.subject()).to_vec() {
                let object = *objects.choose(&mut rng).unwrap_or(&0);
                world.facts.insert((relation, subject), object);
            }
        }
        for attribute in Attribute::ALL {
            let (kind, _, (lo, hi)) = attribute.signature();
            // Values may repeat (700 people, 151 birth years); comparison
            // questions are only asked between different values.
            for &e in &world.of_type(kind).to_vec() {
                world.attributes.insert((attribute, e), rng.random_range(lo..=hi));
            }
        }
        world
    }

    fn name_for(rng: &mut ChaCha8Rng, kind: EntityType) -> (String, Vec<String>) {
        let base = |rng: &mut ChaCha8Rng| {
            let n = rng.random_range(2..=3);
            syllables(rng, n)
        };
        match kind {
            EntityType::Person => (format!("{} {}", base(rng), base(rng)), vec![]),
            EntityType::River => {
                let b = base(rng);
                (format!("{b} River"), vec![format!("the {b}"), b])
            }
            EntityType::Mountain => {
                let b = base(rng);
                (format!("Mount {b}"), vec![b])
            }
            EntityType::Company => {
                let suffix = ["Works", "Labs", "Group", "Industries", "Systems"][rng.random_range(0..5)];
                (format!("{} {suffix}", base(rng)), vec![])
            }
            EntityType::University => (format!("{} University", base(rng)), vec![]),
            EntityType::Band => {
                let b = base(rng);
                (format!("The {b}s"), vec![format!("{b}s")])
            }
            EntityType::Album => (
                format!("{} {}", base(rng), ["Nights", "Echoes", "Lights", "Roads", "Tides"][rng.random_range(0..5)]),
                vec![],
            ),
            EntityType::Novel => (
                format!(
                    "The {} of {}",
                    ["Song", "House", "Winter", "Garden", "Voyage"][rng.random_range(0..5)],
                    base(rng)
                ),
                vec![],
            ),
            EntityType::Element => (format!("{}ium", base(rng)), vec![]),
            EntityType::Team => (
                format!(
                    "{} {}",
                    base(rng),
                    ["Rovers", "Falcons", "United", "Wolves", "Comets"][rng.random_range(0..5)]
                ),
                vec![],
            ),
            EntityType::City | EntityType::Country => (base(rng), vec![]),
        }
    }

    pub fn of_type(&self, kind: EntityType) -> &[usize] {
        self.by_type.get(&kind).map_or(&[], Vec::as_slice)
    }

    pub fn entity(&self, id: usize) -> &Entity {
        &self.entities[id]
    }

    pub fn name(&self, id: usize) -> &str {
        &self.entities[id].name
    }

    /// The entity called `name` (or an alias), case-insensitively.
    pub fn lookup(&self, name: &str) -> Option<usize> {
        self.by_name.get(&name.trim().to_lowercase()).copied()
    }

    pub fn fact(&self, relation: Relation, subject: usize) -> Option<usize> {
        self.facts.get(&(relation, subject)).copied()
    }

    pub fn attribute(&self, attribute: Attribute, entity: usize) -> Option<i64> {
        self.attributes.get(&(attribute, entity)).copied()
    }

    /// Gold answers for an entity: its name and aliases.
    pub fn answers(&self, id: usize) -> Vec<String> {
        let e = self.entity(id);
        std::iter::once(e.name.clone()).chain(e.aliases.iter().cloned()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_world_and_names_are_unique() {
        let a = World::generate(&WorldConfig::default());
        let b = World::generate(&WorldConfig::default());
        assert_eq!(a.entities.len(), b.entities.len());
        assert!(a.entities.iter().zip(&b.entities).all(|(x, y)| x.name == y.name));
        assert_eq!(a.facts, b.facts);
        assert!((1900..=2100).contains(&a.entities.len()), "{}", a.entities.len());
        let c = World::generate(&WorldConfig { seed: 8, ..WorldConfig::default() });
        assert!(a.entities.iter().zip(&c.entities).any(|(x, y)| x.name != y.name));
        let mut seen = HashSet::new();
        for e in &a.entities {
            for n in std::iter::once(&e.name).chain(&e.aliases) {
                assert!(seen.insert(n.to_lowercase()), "duplicate name {n}");
            }
        }
    }

    #[test]
    fn relations_are_typed_functions_and_capitals_lie_in_their_country() {
        let w = World::generate(&WorldConfig::default());
        for relation in Relation::ALL {
            for &s in w.of_type(relation.subject()) {
                let o = w.fact(relation, s).expect("every subject has an object");
                assert_eq!(w.entity(o).kind, relation.object());
            }
        }
        for &country in w.of_type(EntityType::Country) {
            let capital = w.fact(Relation::Capital, country).unwrap();
            assert_eq!(w.fact(Relation::CityCountry, capital), Some(country));
        }
        let types: HashSet<EntityType> = w.entities.iter().map(|e| e.kind).collect();
        assert!(types.len() >= 8);
        let domains: HashSet<Domain> = Relation::ALL.iter().map(|r| r.domain()).collect();
        assert_eq!(domains.len(), 5);
    }
}
