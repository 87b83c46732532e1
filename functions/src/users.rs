//! `orderflow users add|set-password|disable|enable|list`: who may log in, from the command line.
//! Passwords are read from standard input, never from the command line, where the process list
//! and the shell's history would show them: with a hidden prompt on a terminal, else its first
//! line (`printf '%s\n' "$PASSWORD" | orderflow users add --email …`).

use std::{
    io::{BufRead, IsTerminal, Write},
    time::Duration,
};

use anyhow::{Context, bail};
use clap::Subcommand;
use shared::{
    Config,
    db::{
        self,
        users::{self, NewUser, User, UserChanges, constraints},
    },
    domain::account,
};
use sqlx::PgPool;

use crate::accounts::hash_password;

/// `orderflow users …`.
#[derive(Debug, Subcommand)]
pub enum UsersCommand {
    /// Create a user; the password is read from standard input.
    Add {
        /// Login e-mail, unique regardless of case.
        #[arg(long)]
        email: String,
        /// Display name; default: the part of the e-mail before `@`.
        #[arg(long)]
        name: Option<String>,
        /// Make the user an admin (every user's orders, dead letters, users, the board).
        #[arg(long)]
        admin: bool,
    },
    /// Set a user's password, read from standard input (this replaces a demo password).
    SetPassword {
        /// The user's e-mail.
        #[arg(long)]
        email: String,
    },
    /// Disable a user: no more logins, and their tokens stop working within seconds.
    Disable {
        /// The user's e-mail.
        #[arg(long)]
        email: String,
    },
    /// Enable a disabled user again.
    Enable {
        /// The user's e-mail.
        #[arg(long)]
        email: String,
    },
    /// Print every user: id, e-mail, name, admin, disabled.
    List {
        /// Print JSON lines instead of a table.
        #[arg(long)]
        json: bool,
    },
}

/// How long the command waits for PostgreSQL.
const DATABASE_PATIENCE: Duration = Duration::from_secs(10);

/// Runs a `users` subcommand against `DATABASE_URL` (migrating it first, so it works on a fresh
/// database), printing to standard output.
///
/// # Errors
/// Invalid input, an unknown or taken e-mail, or the database is unreachable.
pub async fn run(config: &Config, command: UsersCommand) -> anyhow::Result<()> {
    let pool =
        db::connect_and_migrate(&config.database_url, 1, DATABASE_PATIENCE, config.db_statement_timeout()).await?;
    let mut out = std::io::stdout().lock();
    match command {
        UsersCommand::Add { email, name, admin } => {
            let email = email.trim();
            account::check_email(email).map_err(|e| anyhow::anyhow!("--email {e}"))?;
            let name = name.as_deref().map_or_else(|| account::default_name(email), str::trim);
            account::check_name(name).map_err(|e| anyhow::anyhow!("--name {e}"))?;
            let password_hash = hash_password(read_new_password()?).await?;
            let user = NewUser { email, name, password_hash: &password_hash, is_admin: admin };
            let user = match users::insert_user(&pool, user).await {
                Err(e) if db::violated_constraint(&e).is_some_and(|c| constraints::EMAIL_TAKEN.contains(&c)) => {
                    bail!(
                        "a user with e-mail {email} exists; `orderflow users set-password --email {email}` changes its password"
                    )
                }
                other => other.context("Failed to create the user")?,
            };
            writeln!(out, "created user {} {}{}", user.id, user.email, if user.is_admin { " (admin)" } else { "" })?;
        }
        UsersCommand::SetPassword { email } => {
            let user = existing(&pool, &email).await?;
            let password_hash = hash_password(read_new_password()?).await?;
            change(&pool, &user, UserChanges { password_hash: Some(&password_hash), ..UserChanges::default() }).await?;
            writeln!(out, "password of {} set", user.email)?;
        }
        UsersCommand::Disable { email } => {
            let user = existing(&pool, &email).await?;
            change(&pool, &user, UserChanges { disabled: Some(true), ..UserChanges::default() }).await?;
            writeln!(out, "{} disabled: no more logins, and their tokens stop working within seconds", user.email)?;
        }
        UsersCommand::Enable { email } => {
            let user = existing(&pool, &email).await?;
            change(&pool, &user, UserChanges { disabled: Some(false), ..UserChanges::default() }).await?;
            writeln!(out, "{} enabled", user.email)?;
        }
        UsersCommand::List { json } => {
            let all = users::list_users(&pool).await.context("Failed to list the users")?;
            if !json {
                writeln!(out, "{:>6}  {:<32} {:<24} {:<5} DISABLED", "ID", "E-MAIL", "NAME", "ADMIN")?;
            }
            for user in &all {
                if json {
                    writeln!(out, "{}", serde_json::to_string(user)?)?;
                } else {
                    let (admin, disabled) = (yes_no(user.is_admin), yes_no(user.disabled));
                    writeln!(out, "{:>6}  {:<32} {:<24} {admin:<5} {disabled}", user.id, user.email, user.name)?;
                }
            }
            if !json {
                writeln!(out, "{} user(s)", all.len())?;
            }
        }
    }
    pool.close().await;
    Ok(())
}

/// The user with this e-mail.
async fn existing(pool: &PgPool, email: &str) -> anyhow::Result<User> {
    users::find_user_by_email(pool, email.trim())
        .await
        .context("Failed to look up the user")?
        .with_context(|| format!("no user has e-mail {}; `orderflow users list` shows them", email.trim()))
}

async fn change(pool: &PgPool, user: &User, changes: UserChanges<'_>) -> anyhow::Result<()> {
    users::update_user(pool, user.id, changes)
        .await
        .context("Failed to update the user")?
        .with_context(|| format!("user {} vanished meanwhile", user.email))?;
    Ok(())
}

fn yes_no(value: bool) -> &'static str {
    if value { "yes" } else { "no" }
}

/// A new password from standard input: typed twice at a hidden prompt on a terminal, else the
/// first line of the input. Checked by [`account::check_new_password`].
fn read_new_password() -> anyhow::Result<String> {
    let password = if std::io::stdin().is_terminal() {
        let first = rpassword::prompt_password("New password: ").context("Failed to read the password")?;
        let again = rpassword::prompt_password("Again: ").context("Failed to read the password")?;
        if first != again {
            bail!("the two passwords differ");
        }
        first
    } else {
        let mut line = String::new();
        std::io::stdin().lock().read_line(&mut line).context("Failed to read the password from standard input")?;
        line.trim_end_matches(['\n', '\r']).to_owned()
    };
    account::check_new_password(&password).map_err(|e| anyhow::anyhow!("the password {e}"))?;
    Ok(password)
}
