fn main() {
    std::process::exit(conch::cli::main());
}
