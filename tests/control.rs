//! The control server end to end: every case in `control/cases.rs` runs on every runtime and
//! flavour compiled in (tokio multi-thread and current-thread, smol, async-std), over real
//! loopback TCP and real Unix sockets.
#![cfg(all(
    feature = "control",
    any(feature = "tokio", feature = "smol", feature = "async-std")
))]

#[path = "conformance/support.rs"]
#[allow(dead_code)]
mod support;

#[path = "control/wire.rs"]
mod wire;

#[path = "control/cases.rs"]
mod cases;

#[path = "control/settings.rs"]
mod settings;

#[cfg(feature = "tokio")]
#[path = "control/hardening.rs"]
mod hardening;

use support::{flavour, within_watchdog, Sp};
use wire::Net;

type Case = fn(Sp, Net) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>;

async fn guarded(case: Case, sp: Sp, net: Net) {
    within_watchdog(&sp.clone(), case(sp, net)).await
}

macro_rules! cases {
    ($run:path; $net:expr; $($case:ident),* $(,)?) => {
        $(
            #[test]
            fn $case() {
                $run(|sp, net| Box::pin(crate::cases::$case(sp, net)), $net);
            }
        )*
    };
}

macro_rules! for_each_case {
    ($run:path) => {
        mod tcp {
            cases!($run; crate::wire::Net::Tcp;
                simple_pool_commands,
                task_pool_runs_registered_jobs,
                resize_changes_real_concurrency,
                bad_input_gets_errors_and_the_session_goes_on,
                concurrent_sessions_are_independent,
                connection_limit_refuses_extra_clients,
                client_hanging_up_mid_wait_frees_its_slot,
                stalled_client_blocks_nobody,
                many_connections_at_once,
                token_is_required_when_set,
                python_client_text_mode,
                shutdown_ends_waiting_sessions,
                custom_commands,
                custom_command_names_are_checked,
                scheduling_settings_over_the_wire,
                rate_limits_and_the_adaptive_limit_over_the_wire,
            );
        }
        #[cfg(unix)]
        mod unix {
            cases!($run; crate::wire::Net::Unix;
                simple_pool_commands,
                task_pool_runs_registered_jobs,
                resize_changes_real_concurrency,
                bad_input_gets_errors_and_the_session_goes_on,
                concurrent_sessions_are_independent,
                connection_limit_refuses_extra_clients,
                client_hanging_up_mid_wait_frees_its_slot,
                stalled_client_blocks_nobody,
                many_connections_at_once,
                token_is_required_when_set,
                python_client_text_mode,
                shutdown_ends_waiting_sessions,
                custom_commands,
                custom_command_names_are_checked,
                scheduling_settings_over_the_wire,
                rate_limits_and_the_adaptive_limit_over_the_wire,
                unix_socket_file_lifecycle,
            );
        }
    };
}

/// The hardening cases, over TCP and a Unix socket (on tokio: the server does not depend on
/// the runtime).
#[cfg(feature = "tokio")]
mod hardened {
    macro_rules! nets {
        ($($case:ident),* $(,)?) => {
            mod tcp {
                $(#[test] fn $case() { crate::hardening::$case(crate::wire::Net::Tcp) })*
            }
            #[cfg(unix)]
            mod unix {
                $(#[test] fn $case() { crate::hardening::$case(crate::wire::Net::Unix) })*
            }
        };
    }
    nets!(
        huge_counts_are_refused_and_the_server_lives,
        tasks_are_paged,
        tasks_filter_and_groups_page,
        silent_connections_do_not_lock_the_operator_out,
        refused_clients_always_read_their_refusal,
        slow_reader_cannot_stall_shutdown,
        refused_tokens_back_off,
        operator_is_answered_during_a_flood,
        concurrent_stops_report_each_task_once,
        settings_are_bounded_and_checked,
    );
    #[cfg(unix)]
    #[test]
    fn staging_names_cannot_be_squatted() {
        crate::hardening::staging_names_cannot_be_squatted(crate::wire::Net::Unix)
    }
}

/// One module per runtime flavour compiled in, running every case there over TCP and Unix.
macro_rules! flavour_modules {
    ($($feature:literal $flavour:ident),* $(,)?) => {
        $(
            #[cfg(feature = $feature)]
            mod $flavour {
                use super::*;
                fn run(case: Case, net: Net) {
                    flavour::$flavour(|sp| guarded(case, sp, net));
                }
                for_each_case!(super::run);
            }
        )*
    };
}

flavour_modules!(
    "tokio" tokio_multi_thread,
    "tokio" tokio_current_thread,
    "smol" smol_global,
    "smol" smol_own_executor,
    "async-std" async_std_global,
);

/// A saturated executor must not starve the server: both tokio workers are blocked by pool
/// tasks, and the server still answers (and resizes the pool).
#[cfg(feature = "tokio")]
#[test]
fn saturated_executor_does_not_starve_the_server() {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let pool = async_taskpool::TaskPool::new(async_taskpool::runtime::TokioSpawner::from_handle(
        rt.handle().clone(),
    ));
    let release = Arc::new(AtomicBool::new(false));
    let busy = support::Counter::new();
    for _ in 0..2 {
        let (release, busy) = (release.clone(), busy.clone());
        // Blocks its worker thread on purpose, as CPU-bound work would.
        let _detached = pool
            .spawn_queued(async move {
                busy.bump();
                let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
                while !release.load(Ordering::SeqCst) && std::time::Instant::now() < deadline {
                    std::thread::sleep(std::time::Duration::from_millis(1));
                }
            })
            .unwrap();
    }
    futures::executor::block_on(busy.wait_for(2));
    let served = wire::Served::start(async_taskpool::control::ControlServer::new(&pool), Net::Tcp);
    let mut w = served.session();
    assert_eq!(w.ok(r#"{"cmd":"num-running"}"#), 2);
    assert_eq!(w.ok(r#"{"cmd":"pool-size","value":4}"#), 4);
    assert_eq!(w.ok(r#"{"cmd":"stats"}"#)["limit"], 4);
    release.store(true, Ordering::SeqCst);
    assert_eq!(
        w.ok(r#"{"cmd":"gather-and-close"}"#),
        serde_json::Value::Null
    );
}

/// A custom command's handler runs on the pool's tokio runtime: tokio's timer and sockets
/// work inside it (they panic outside a runtime).
#[cfg(feature = "tokio")]
#[test]
fn custom_command_handlers_can_use_runtime_io() {
    use async_taskpool::control::ControlServer;
    use serde_json::{json, Value};
    async fn probe(_args: Value) -> Result<Value, String> {
        tokio::time::sleep(std::time::Duration::from_millis(1)).await;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .map_err(|e| e.to_string())?;
        let addr = listener.local_addr().map_err(|e| e.to_string())?;
        let (client, accepted) =
            tokio::join!(tokio::net::TcpStream::connect(addr), listener.accept());
        client.map_err(|e| e.to_string())?;
        accepted.map_err(|e| e.to_string())?;
        Ok(json!({ "connected": true }))
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let pool = async_taskpool::TaskPool::new(async_taskpool::runtime::TokioSpawner::from_handle(
        rt.handle().clone(),
    ));
    let mut nets = vec![Net::Tcp];
    if cfg!(unix) {
        nets.push(Net::Unix);
    }
    for net in nets {
        let server = ControlServer::new(&pool).command("probe", "Connects with tokio.", probe);
        let served = wire::Served::start(server, net);
        let mut w = served.session();
        assert_eq!(w.ok(r#"{"cmd":"probe"}"#), json!({"connected": true}));
    }
}
