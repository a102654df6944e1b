//! `ledgerline bench actors`: events per second through the actix actor shells with the embedded
//! log. Each actor is a real extension aggregate in its own stream: it is provisioned, then takes
//! a run of DND toggles and presence changes one after another (as commands to one aggregate
//! always run), while all actors run concurrently so the log can group their commits. Every
//! command decides, appends durably with its expected version, folds and publishes: the figure is
//! events made durable per second of wall time, over a fresh log in a temporary directory.

use anyhow::{Context, bail};
use engine::extension::{Extension, ExtensionCommand, PresenceChoice};
use engine::runtime::{Instance, RegistryConfig, Throughput, measure_sqlite};
use events::StoreOptions;
use events::ids::{DepartmentId, ExtensionNumber, PresenceStateId, StreamId, TenantId, UserId};
use events::model::{PresenceSource, PresenceStateType, SettingSource};

use super::ScratchDir;

#[derive(Debug, Clone, clap::Args)]
pub(crate) struct ActorBenchArgs {
    /// Commands each actor takes after it is provisioned.
    #[arg(long, default_value_t = 100)]
    commands_per_actor: usize,
    /// Actor counts to measure, one run each.
    #[arg(long, value_delimiter = ',', default_value = "100,500,1000")]
    actors: Vec<usize>,
}

/// Runs every configuration in its own actix system on this thread and prints one line each.
pub(crate) fn run(args: &ActorBenchArgs, options: &StoreOptions) -> anyhow::Result<()> {
    println!("bench actors — extension aggregates through the actor shells, embedded log");
    println!(
        "{:>7} {:>9} {:>10} {:>9} {:>9} {:>12}",
        "actors", "arbiters", "commands", "events", "seconds", "events/s"
    );
    for &actors in &args.actors {
        for arbiters in [0, 2] {
            let t = measure(actors, arbiters, args.commands_per_actor, options)?;
            if t.failed > 0 {
                bail!(
                    "{} of {} commands failed: {}",
                    t.failed,
                    t.commands,
                    t.first_failure.unwrap_or_default()
                );
            }
            println!(
                "{:>7} {:>9} {:>10} {:>9} {:>9.3} {:>12.0}",
                actors,
                arbiters,
                t.commands,
                t.events,
                t.elapsed.as_secs_f64(),
                t.events_per_second()
            );
        }
    }
    Ok(())
}

fn measure(
    actors: usize,
    arbiters: usize,
    per_actor: usize,
    options: &StoreOptions,
) -> anyhow::Result<Throughput> {
    let scratch = ScratchDir::new()?;
    let tenant = TenantId::parse("bench").context("tenant id")?;
    let department = DepartmentId::parse("sales").context("department id")?;
    let numbers = (0..actors)
        .map(|i| ExtensionNumber::parse(format!("{}", 100_000 + i)))
        .collect::<Result<Vec<_>, _>>()
        .context("extension numbers")?;
    let users = numbers
        .iter()
        .map(|n| UserId::parse(n.as_str()))
        .collect::<Result<Vec<_>, _>>()
        .context("user ids")?;
    let instances: Vec<Instance> = numbers
        .iter()
        .map(|n| Instance::new(StreamId::extension(&tenant, n)).in_tenant(tenant.clone()))
        .collect();
    let presence = [
        ("available", PresenceStateType::Available),
        ("away", PresenceStateType::Away),
    ]
    .map(|(id, state_type)| {
        PresenceStateId::parse(id).map(|state| PresenceChoice { state, state_type })
    });
    let [Ok(available), Ok(away)] = presence else {
        bail!("presence state ids");
    };
    let command = |a: usize, n: usize| -> ExtensionCommand {
        let number = &numbers[a];
        match n {
            0 => ExtensionCommand::Provision {
                extension: number.clone(),
                user: users[a].clone(),
                display_name: format!("User {number}"),
                department: department.clone(),
            },
            n if n % 2 == 1 => ExtensionCommand::SetDnd {
                enabled: n % 4 == 1,
                source: SettingSource::User,
                by: None,
            },
            n => ExtensionCommand::SetPresence {
                choice: if n % 4 == 2 {
                    away.clone()
                } else {
                    available.clone()
                },
                message: None,
                source: PresenceSource::User,
                by: None,
                rules: Vec::new(),
            },
        }
    };
    let config = RegistryConfig {
        arbiters,
        mailbox_capacity: 16,
        ..RegistryConfig::default()
    };
    let path = scratch.0.join("bench.db");
    let system = actix_web::rt::System::new();
    let throughput = system
        .block_on(measure_sqlite::<Extension, _>(
            path,
            options.clone(),
            config,
            &instances,
            per_actor + 1,
            command,
        ))
        .context("opening the embedded log")?;
    Ok(throughput)
}
