//! `uninstall`: TODO (issue 3).

use crate::cli::{Global, UninstallArgs};
use crate::error::{Error, Result};

pub fn run(_global: &Global, _args: &UninstallArgs) -> Result<()> {
    Err(Error::failed("uninstall is not implemented yet"))
}
