//! Link settings for the engine that must hold however it is built.

fn main() {
    // The wasm shadow stack (where QuickJS keeps its C frames): 1 MiB, above QuickJS' own
    // limit (MAX_STACK in src/engine.rs), so deep JS recursion ends in a RangeError instead
    // of running off the stack. Not larger: it sits below the heap in linear memory, and every
    // request's reset scans the page tables of the whole memory (4 MiB cost 2 % of JS RPS).
    println!("cargo:rustc-link-arg=-zstack-size=1048576");
    println!("cargo:rerun-if-changed=build.rs");
}
