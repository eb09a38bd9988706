#![forbid(unsafe_code)]

use clap::Parser;

fn main() {
    iptables_docker::system::default_sigpipe();
    let cli = iptables_docker::cli::Cli::parse();
    if let Err(err) = iptables_docker::commands::run(cli) {
        iptables_docker::report::error(format_args!("iptables-docker: {err}"));
        std::process::exit(err.kind().exit_code());
    }
}
