//! `install`: TODO (issue 3).

use crate::cli::{Global, InstallArgs};
use crate::error::{Error, Result};

pub fn run(_global: &Global, _args: &InstallArgs) -> Result<()> {
    Err(Error::failed("install is not implemented yet"))
}
