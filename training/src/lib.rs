pub mod export;
pub mod model;
