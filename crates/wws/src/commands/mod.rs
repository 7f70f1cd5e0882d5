//! One module per subcommand.

pub mod runtimes;
pub mod serve;
