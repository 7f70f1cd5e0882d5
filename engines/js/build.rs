//! Link settings for the engine that must hold however it is built.

fn main() {
    // The wasm shadow stack (where QuickJS keeps its C frames): 4 MiB, above QuickJS' own
    // limit (MAX_STACK in src/engine.rs), so deep JS recursion ends in a RangeError instead
    // of running off the stack.
    println!("cargo:rustc-link-arg=-zstack-size=4194304");
    println!("cargo:rerun-if-changed=build.rs");
}
