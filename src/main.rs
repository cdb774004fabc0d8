//! The `growth-engine` binary: reads settings, sets up logging, runs a command.

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use growth_engine::{cli, config::Settings};

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Growth Engine: OAuth connections to marketing platforms.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the HTTP service (the default).
    Serve,
    /// Apply the database schema and exit.
    Migrate,
    /// Print a new TOKEN_ENCRYPTION_KEY.
    Keygen,
    /// Re-encrypt every stored token with the current key (safe while the service runs).
    RotateKeys,
    /// Validate settings and print what is configured, secrets masked.
    CheckConfig,
    /// Print a short-lived link that opens a store's connections page.
    DashboardLink {
        /// The store the page manages.
        #[arg(long)]
        store_id: String,
        /// The merchant's user.
        #[arg(long)]
        user_id: String,
        /// How long the link works (1 to 15).
        #[arg(long, default_value_t = 15, value_parser = clap::value_parser!(i64).range(1..=15))]
        minutes: i64,
    },
    /// Create, list or revoke scoped API keys (stored as hashes in the database).
    ApiKey {
        #[command(subcommand)]
        command: ApiKeyCommand,
    },
}

#[derive(Subcommand)]
enum ApiKeyCommand {
    /// Create a key and print it once on stdout.
    Create {
        /// A unique name (1 to 64 of a-z, 0-9, '_', '-'); the audit trail names the key by it.
        #[arg(long)]
        name: String,
        /// Comma-separated scopes: connections:read, connect, disconnect, tokens:read, proxy,
        /// selection:write, audit:read, posts:write, posts:read, each optionally narrowed with
        /// :<platform>.
        #[arg(long)]
        scopes: String,
        /// Comma-separated store ids (1 to 100) the key may act for; without it, every store.
        #[arg(long)]
        stores: Option<String>,
    },
    /// List keys: name, scopes, stores, created, last used, revoked (never the key).
    List,
    /// Revoke a key by name.
    Revoke {
        /// The key's name.
        #[arg(long)]
        name: String,
    },
}

#[tokio::main]
async fn main() -> ExitCode {
    let _ = dotenvy::dotenv();
    let cli = Cli::parse();
    if let Some(Command::Keygen) = cli.command {
        println!("{}", growth_engine::vault::Key::generate().to_base64());
        return ExitCode::SUCCESS;
    }
    let settings = match Settings::from_env() {
        Ok(settings) => settings,
        Err(error) => {
            eprintln!("growth-engine: {error}");
            return ExitCode::from(2);
        }
    };
    // `dashboard-link` prints only the link, so that `$(growth-engine dashboard-link ..)` works;
    // `api-key` likewise prints only the key on stdout.
    if !matches!(
        cli.command,
        Some(Command::DashboardLink { .. } | Command::ApiKey { .. })
    ) {
        cli::init_tracing(&settings);
    }
    let result = match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => cli::serve(settings).await,
        Command::Migrate => cli::migrate(settings).await,
        Command::RotateKeys => cli::rotate_keys(settings).await,
        Command::CheckConfig => cli::check_config(&settings).await,
        Command::DashboardLink {
            store_id,
            user_id,
            minutes,
        } => cli::dashboard_link(settings, &store_id, &user_id, minutes),
        Command::ApiKey { command } => match command {
            ApiKeyCommand::Create {
                name,
                scopes,
                stores,
            } => cli::api_key_create(settings, &name, &scopes, stores.as_deref()).await,
            ApiKeyCommand::List => cli::api_key_list(settings).await,
            ApiKeyCommand::Revoke { name } => cli::api_key_revoke(settings, &name).await,
        },
        Command::Keygen => Ok(()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) if error.downcast_ref::<cli::UsageError>().is_some() => {
            eprintln!("growth-engine: {error}");
            ExitCode::from(2)
        }
        Err(error) => {
            eprintln!("growth-engine: {error:#}");
            ExitCode::FAILURE
        }
    }
}
