use clap::Parser;

fn main() {
    // Die quietly on a closed pipe (`iptables-docker plan | head`), like other Unix tools.
    // SAFETY: resetting a signal disposition to its default before any thread starts.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    let cli = iptables_docker::cli::Cli::parse();
    if let Err(err) = iptables_docker::commands::run(cli) {
        eprintln!("iptables-docker: {err}");
        std::process::exit(err.kind().exit_code());
    }
}
