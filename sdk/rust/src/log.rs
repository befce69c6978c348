//! Lines for roster's log; warnings and errors also reach the run's log. Needs the `log`
//! capability (guest stdout and stderr go to roster's log too, without a level).

use crate::bindings::roster::plugin::log::{log, Level};

pub fn error(message: &str) {
    log(Level::Error, message);
}

pub fn warn(message: &str) {
    log(Level::Warn, message);
}

pub fn info(message: &str) {
    log(Level::Info, message);
}

pub fn debug(message: &str) {
    log(Level::Debug, message);
}

pub fn trace(message: &str) {
    log(Level::Trace, message);
}
