fn main() {
    std::process::exit(conch::tool::main());
}
