//! `http`: requests to granted origins with host-held credentials. Until a source is
//! granted origins (issue #4), every request is denied.

use crate::runtime::roster::plugin::http::{Host, HttpError, Request, Response};
use crate::runtime::HostState;

impl Host for HostState {
    fn send(&mut self, request: Request) -> Result<Response, HttpError> {
        let origin = request.url.split('/').take(3).collect::<Vec<_>>().join("/");
        Err(HttpError::Denied(format!(
            "origin {origin} is not granted to this source"
        )))
    }
}
