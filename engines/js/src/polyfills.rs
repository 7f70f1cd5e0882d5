//! The Web API polyfills, written in JavaScript under `src/js/` and embedded in the engine.
//!
//! The files are concatenated, in dependency order, into ONE function expression
//! `(function (host) { ...; return internal; })`: they share a scope, so nothing leaks to the
//! worker except what they define on `globalThis` on purpose. Evaluating [`SOURCE`] yields
//! that function; the engine calls it with the Rust primitives (`host`) and keeps `internal`.

/// File name the polyfills carry in stack traces.
pub const FILE_NAME: &str = "wws:polyfills";

/// The polyfills as one script evaluating to a function of `host`.
pub const SOURCE: &str = concat!(
    "(function (host) {\n\"use strict\";\n",
    include_str!("js/prelude.js"),
    "\n",
    include_str!("js/console.js"),
    "\n",
    include_str!("js/events.js"),
    "\n",
    include_str!("js/encoding.js"),
    "\n",
    include_str!("js/url.js"),
    "\n",
    include_str!("js/headers.js"),
    "\n",
    include_str!("js/body.js"),
    "\n",
    include_str!("js/fetch.js"),
    "\n",
    include_str!("js/timers.js"),
    "\n",
    include_str!("js/kv.js"),
    "\n",
    include_str!("js/crypto.js"),
    "\n",
    include_str!("js/serve.js"),
    "\nreturn internal;\n})\n",
);
