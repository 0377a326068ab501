//! Glue between a plain-Rust [`Parser`] and the generated component exports.

use std::cell::RefCell;
use std::marker::PhantomData;

use crate::bindings::exports::flowlink::parser::parser::{
    Guest, GuestSession, ParserInfo as WitInfo, Session,
};
use crate::{Batch, Origin, Parser};

/// The exported component for parser `P`. Use it through [`crate::export_parser!`].
pub struct Component<P>(PhantomData<P>);

/// One session resource: the parser value behind the handle the host holds.
/// The component model gives `&self`; a `RefCell` is enough because a
/// component instance is single-threaded and never re-entered.
pub struct SessionCell<P>(RefCell<P>);

impl<P: Parser> Guest for Component<P> {
    type Session = SessionCell<P>;

    fn info() -> WitInfo {
        let info = P::info();
        WitInfo {
            name: info.name,
            version: info.version,
            formats: info.formats,
        }
    }
}

impl<P: Parser> GuestSession for SessionCell<P> {
    fn open(config: String) -> Result<Session, String> {
        crate::log::install_panic_hook();
        let parser = P::open(&config)?;
        Ok(Session::new(SessionCell(RefCell::new(parser))))
    }

    fn parse(&self, origin: Origin, payload: Vec<u8>) -> Result<Batch, String> {
        self.0.borrow_mut().parse(&origin, &payload)
    }

    fn save_state(&self) -> Vec<u8> {
        self.0.borrow().save_state()
    }

    fn restore_state(&self, state: Vec<u8>) -> Result<(), String> {
        self.0.borrow_mut().restore_state(&state)
    }
}
