//! Worker heartbeats, the `workers` table: a row per live worker, kept fresh by its process and
//! removed when the process stops. The board reads it ([`super::board::live_workers`]).

use sqlx::PgPool;

/// A worker whose heartbeat to write.
#[derive(Debug, Clone, Copy)]
pub struct Heartbeat<'a> {
    /// Its unique name.
    pub name: &'a str,
    /// The queue it consumes.
    pub queue: &'a str,
    /// The function it runs.
    pub function: &'a str,
    /// Its middleware, as the board shows it.
    pub layers: &'a str,
}

/// Inserts these workers of `process`, or refreshes their heartbeat.
///
/// # Errors
/// Database errors.
pub async fn beat(pool: &PgPool, process: &str, workers: &[Heartbeat<'_>]) -> sqlx::Result<()> {
    let names: Vec<String> = workers.iter().map(|w| w.name.to_owned()).collect();
    let queues: Vec<String> = workers.iter().map(|w| w.queue.to_owned()).collect();
    let functions: Vec<String> = workers.iter().map(|w| w.function.to_owned()).collect();
    let layers: Vec<String> = workers.iter().map(|w| w.layers.to_owned()).collect();
    sqlx::query!(
        r#"
            insert into workers (name, queue, function, process, layers)
            select name, queue, function, $5, layers
            from unnest($1::text[], $2::text[], $3::text[], $4::text[]) as w(name, queue, function, layers)
            on conflict (name) do update set last_heartbeat = now(), queue = excluded.queue
            "#,
        &names,
        &queues,
        &functions,
        &layers,
        process
    )
    .execute(pool)
    .await?;
    Ok(())
}

/// Removes every worker of `process` (it is stopping).
///
/// # Errors
/// Database errors.
pub async fn remove_process(pool: &PgPool, process: &str) -> sqlx::Result<()> {
    sqlx::query!("delete from workers where process = $1", process).execute(pool).await?;
    Ok(())
}
