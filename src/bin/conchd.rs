//! `conchd` is `conch cron daemon`: the same program under another name.
fn main() {
    std::process::exit(conch::tool::main());
}
