// Rhai's evaluator recurses deeply per script call level: give the component an 8 MiB
// stack (the wasm32 default is 1 MiB) so the engine's own call-depth limit is what stops a
// runaway recursion, with the script's position, rather than a stack-overflow trap.
fn main() {
    if std::env::var("CARGO_CFG_TARGET_ARCH").as_deref() == Ok("wasm32") {
        println!("cargo:rustc-link-arg=-zstack-size=8388608");
    }
}
