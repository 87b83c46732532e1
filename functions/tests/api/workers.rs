//! `orderflow worker --functions …`: a process runs only the functions it is given.

use std::time::Duration;

use clap::Parser;
use orderflow::{app::Role, cli::Cli, registry::Function};
use shared::{db::orders, domain::NewOrder, events::EventType};
use sqlx::Connection as _;
use uuid::Uuid;

use crate::helpers::{amqp_channel, app, eventually, order_status, queue_depth};

#[test]
fn an_unknown_function_name_is_refused_with_the_valid_ones() {
    let error =
        Cli::try_parse_from(["orderflow", "worker", "--functions", "on_order_created,send_invoices"]).unwrap_err();

    let message = error.to_string();
    assert!(message.contains("send_invoices"), "{message}");
    for function in Function::ALL {
        assert!(message.contains(function.name()), "{message} does not list {}", function.name());
    }
}

#[test]
fn function_names_are_comma_separated() {
    let cli = Cli::try_parse_from(["orderflow", "worker", "--functions", "on_order_created,expire_orders"]).unwrap();

    let Some(orderflow::cli::Command::Worker(args)) = cli.command else { panic!("not a worker command") };
    assert_eq!(args.functions, [Function::OnOrderCreated, Function::ExpireOrders]);
}

#[tokio::test]
async fn a_worker_without_on_order_created_leaves_new_orders_alone() {
    let app = app().role(Role::Worker(vec![Function::OnOrderCompleted, Function::OnOrderExpired])).spawn().await;
    let order = NewOrder::parse(1, 1, 1, "1.00".parse().unwrap(), None).unwrap();
    let id = orders::insert_order(&app.pool, &order, Uuid::now_v7(), "test", (None, None), None).await.unwrap().id;
    let channel = amqp_channel().await.unwrap();

    // The worker's relay publishes the event, and nobody consumes it.
    eventually("the event to wait in its queue", Duration::from_secs(10), || async {
        (queue_depth(&channel, &app.queue(EventType::OrderCreated)).await == 1).then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(order_status(&app.pool, id).await, "Pending");
    assert_eq!(queue_depth(&channel, &app.queue(EventType::OrderCreated)).await, 1);
}

#[tokio::test]
async fn a_process_that_stops_removes_its_workers_from_the_board_and_leaves_other_processes_alone() {
    let mut app = app().role(Role::Worker(vec![Function::OnOrderCompleted, Function::OnOrderExpired])).spawn().await;
    // A worker of another process on the same database.
    sqlx::query(
        "insert into workers (name, queue, function, process) values ('other@host-2', 'q', 'f', 'other-process')",
    )
    .execute(&app.pool)
    .await
    .unwrap();
    eventually("this process's two workers to beat", Duration::from_secs(15), || async {
        (app.count("workers").await == 3).then_some(())
    })
    .await;

    app.stop().await;

    // The app closed its pool as it stopped.
    let mut conn = sqlx::PgConnection::connect(&app.config.database_url).await.unwrap();
    let left: Vec<String> = sqlx::query_scalar("select name from workers").fetch_all(&mut conn).await.unwrap();
    assert_eq!(left, ["other@host-2"]);
}
