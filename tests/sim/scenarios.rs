//! The scenarios: each asserts what would break if the feature under it did.

use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

use crate::harness::{self, Reproduce, World, BLOCK_INTERVAL, PORT};

fn ip(a: u8, b: u8, c: u8, d: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(a, b, c, d))
}

const SECS: fn(u64) -> Duration = Duration::from_secs;

fn report(what: &str, seed: u64, simulated: Duration, wall: Instant) {
    eprintln!(
        "{what}: seed {seed:#x}, {:.0} s simulated in {:.1} s of wall time",
        simulated.as_secs_f64(),
        wall.elapsed().as_secs_f64()
    );
}

// ---- partition ------------------------------------------------------------------------

const SIDE_A: [&str; 3] = ["a1", "a2", "a3"];
const SIDE_B: [&str; 3] = ["b1", "b2", "b3"];
const SPLIT_AT: Duration = Duration::from_secs(20);
const HEAL_AT: Duration = Duration::from_secs(80);
/// How long after the heal every node must share the head.
const CONVERGE_WITHIN: Duration = Duration::from_secs(150);

/// Six nodes, a producer on side A; split A | B for a minute while A produces; heal.
/// Returns the trace.
fn partition(seed: u64) -> Vec<String> {
    let wall = Instant::now();
    let mut world = World::new(seed);
    let all: Vec<&str> = SIDE_A.iter().chain(SIDE_B.iter()).copied().collect();
    for (i, name) in all.iter().enumerate() {
        let side = if i < 3 { 1 } else { 2 };
        let spec = world.node(name, ip(10, 0, side, 1 + (i % 3) as u8), PORT, true);
        spec.producer = *name == "a1";
        spec.discovers = all
            .iter()
            .filter(|n| *n != name)
            .map(|n| n.to_string())
            .collect();
    }
    let mut sim = harness::sim(seed);
    for name in &all {
        world.host(&mut sim, world.specs[*name].ip, &[name]);
    }
    let ips =
        |names: &[&str]| -> Vec<IpAddr> { names.iter().map(|n| world.specs[*n].ip).collect() };
    let (a, b) = (ips(&SIDE_A), ips(&SIDE_B));
    let every = ips(&all);
    harness::set_latencies(&sim, seed, &every, &every);

    world.run_until(&mut sim, SPLIT_AT, |_, _| {});
    let joined = world.head("a1").expect("a1 runs");
    for name in &all {
        assert_eq!(
            world.head(name),
            Some(joined),
            "seed {seed:#x}: {name} did not follow the producer before the split"
        );
    }
    assert!(
        joined >= 5,
        "seed {seed:#x}: only {joined} blocks before the split"
    );
    for x in &a {
        for y in &b {
            sim.partition(*x, *y);
        }
    }
    // A block sealed just before the split may still be on its way.
    world.run_until(&mut sim, SPLIT_AT + SECS(1), |_, _| {});
    let frozen: Vec<Option<u64>> = SIDE_B.iter().map(|n| world.head(n)).collect();
    world.run_until(&mut sim, HEAL_AT, |w, sim| {
        for (name, was) in SIDE_B.iter().zip(&frozen) {
            assert_eq!(
                w.head(name),
                *was,
                "seed {seed:#x}: {name} advanced during the split at {:?}",
                sim.elapsed()
            );
        }
    });
    let at_heal = world.head("a1").expect("a1 runs");
    let produced = (HEAL_AT - SPLIT_AT).as_secs() / BLOCK_INTERVAL.as_secs();
    assert!(
        at_heal >= joined + produced - 2,
        "seed {seed:#x}: side A made {} blocks during the split, expected about {produced}",
        at_heal - joined
    );
    for name in &SIDE_A {
        assert!(
            world.head(name) >= Some(at_heal - 1),
            "seed {seed:#x}: {name} on the producer's side did not follow it"
        );
    }
    for x in &a {
        for y in &b {
            sim.repair(*x, *y);
        }
    }
    let mut converged = None;
    world.run_until(&mut sim, HEAL_AT + CONVERGE_WITHIN, |w, sim| {
        if converged.is_some() {
            return;
        }
        let heads: Vec<_> = all
            .iter()
            .map(|n| w.view(n).and_then(|v| v.chain).map(|c| c.head()))
            .collect();
        let first = heads[0];
        if first.is_some_and(|h| h.number >= at_heal) && heads.iter().all(|h| *h == first) {
            converged = Some(sim.elapsed());
        }
    });
    let converged = converged.unwrap_or_else(|| {
        let heads: Vec<_> = all.iter().map(|n| (n, world.head(n))).collect();
        panic!(
            "seed {seed:#x}: no common head within {CONVERGE_WITHIN:?} of the heal \
             (head at the heal {at_heal}): {heads:?}"
        )
    });
    eprintln!(
        "partition: converged {:.1} s after the heal",
        (converged - HEAL_AT).as_secs_f64()
    );
    report("partition", seed, sim.elapsed(), wall);
    world.trace.save("partition");
    world.trace.lines()
}

#[test]
fn partition_heals_to_one_head() {
    let seed = harness::seed();
    let _r = Reproduce {
        seed,
        test: "scenarios::partition_heals_to_one_head",
    };
    partition(seed);
}

// ---- determinism ----------------------------------------------------------------------

/// A scenario run with a seed, giving its trace.
type Scenario = fn(u64) -> Vec<String>;

#[test]
fn one_seed_one_trace() {
    let seed = harness::seed();
    let _r = Reproduce {
        seed,
        test: "scenarios::one_seed_one_trace",
    };
    let scenarios: [(&str, Scenario); 4] = [
        ("partition", partition),
        ("crash", crash),
        ("churn", churn),
        ("distinct hosts", distinct_hosts),
    ];
    let mut partition_trace = Vec::new();
    for (name, scenario) in scenarios {
        let first = scenario(seed);
        let second = scenario(seed);
        if let Some(i) = (0..first.len().max(second.len())).find(|&i| first.get(i) != second.get(i))
        {
            panic!(
                "seed {seed:#x}: two runs of {name} differ at line {i} of {}/{}:\n  first:  {:?}\n  second: {:?}",
                first.len(),
                second.len(),
                first.get(i),
                second.get(i)
            );
        }
        assert!(
            first.len() > 100,
            "seed {seed:#x}: a {name} trace of {} lines",
            first.len()
        );
        eprintln!("determinism: {name}: {} trace lines identical", first.len());
        if name == "partition" {
            partition_trace = first;
        }
    }
    // And the seed is what decides it: another one makes another run.
    assert_ne!(
        partition_trace,
        partition(seed ^ 1),
        "seed {seed:#x}: seeds {seed:#x} and {:#x} ran alike",
        seed ^ 1
    );
}

// ---- distinct hosts -------------------------------------------------------------------

/// Identities one host runs against the victim: more than `max_per_ip`.
const SYBILS: usize = 6;
/// Hosts of one /24, one identity each: more than `max_per_subnet`.
const NEIGHBOURS: u8 = 20;

/// A victim with the default limits (4 per IP, 16 per /24); six identities on one host,
/// twenty hosts in one /24 and, once those are in, an honest host from another /24, all
/// dialing the victim through the dialer.
fn distinct_hosts(seed: u64) -> Vec<String> {
    let wall = Instant::now();
    let mut world = World::new(seed);
    let victim_ip = ip(10, 9, 0, 1);
    world.node("v", victim_ip, PORT, false);
    let limits = world.specs["v"].pool.clone();
    assert!(SYBILS > limits.max_per_ip && usize::from(NEIGHBOURS) > limits.max_per_subnet);
    let sybil_ip = ip(10, 1, 1, 1);
    let sybils: Vec<String> = (0..SYBILS).map(|k| format!("s{k}")).collect();
    for (k, name) in sybils.iter().enumerate() {
        world.node(name, sybil_ip, PORT + k as u16, false).discovers = vec!["v".into()];
    }
    let neighbours: Vec<(String, IpAddr)> = (1..=NEIGHBOURS)
        .map(|i| (format!("n{i}"), ip(10, 1, 2, i)))
        .collect();
    for (name, addr) in &neighbours {
        world.node(name, *addr, PORT, false).discovers = vec!["v".into()];
    }
    let honest_ip = ip(10, 2, 0, 1);
    world.node("h", honest_ip, PORT, false).discovers = vec!["v".into()];

    let mut sim = harness::sim(seed);
    world.host(&mut sim, victim_ip, &["v"]);
    let sybil_names: Vec<&str> = sybils.iter().map(String::as_str).collect();
    world.host(&mut sim, sybil_ip, &sybil_names);
    for (name, addr) in &neighbours {
        world.host(&mut sim, *addr, &[name]);
    }
    let mut ips = vec![victim_ip, sybil_ip];
    ips.extend(neighbours.iter().map(|(_, a)| *a));
    harness::set_latencies(&sim, seed, &ips, &ips);

    // (same IP, same /24 of the neighbours, the honest host) among the victim's peers.
    let census = |w: &World| {
        let Some(v) = w.view("v") else {
            return (0, 0, false);
        };
        let peers = v.net.peers();
        let from =
            |f: &dyn Fn(IpAddr) -> bool| peers.iter().filter(|p| f(p.remote_addr.ip())).count();
        let same_ip = from(&|a| a == sybil_ip);
        let same_subnet = from(&|a| matches!(a, IpAddr::V4(v4) if v4.octets()[..3] == [10, 1, 2]));
        let honest = from(&|a| a == honest_ip) == 1;
        (same_ip, same_subnet, honest)
    };
    let caps_hold = |w: &World, sim: &turmoil::Sim<'_>| {
        let (same_ip, same_subnet, _) = census(w);
        assert!(
            same_ip <= limits.max_per_ip && same_subnet <= limits.max_per_subnet,
            "seed {seed:#x}: at {:?} the victim has {same_ip} peers on {sybil_ip} (cap {}) \
             and {same_subnet} in 10.1.2.0/24 (cap {})",
            sim.elapsed(),
            limits.max_per_ip,
            limits.max_per_subnet
        );
    };
    world.run_until(&mut sim, SECS(30), caps_hold);
    let (same_ip, same_subnet, _) = census(&world);
    assert_eq!(
        (same_ip, same_subnet),
        (limits.max_per_ip, limits.max_per_subnet),
        "seed {seed:#x}: the caps should be reached, not just held"
    );
    // Every sybil and neighbour keeps dialing; an honest host elsewhere still gets in.
    world.host(&mut sim, honest_ip, &["h"]);
    ips.push(honest_ip);
    harness::set_latencies(&sim, seed, &[honest_ip], &ips);
    let mut admitted = None;
    world.run_until(&mut sim, SECS(60), |w, sim| {
        caps_hold(w, sim);
        if admitted.is_none() && census(w).2 {
            admitted = Some(sim.elapsed());
        }
    });
    let admitted = admitted.unwrap_or_else(|| {
        panic!("seed {seed:#x}: the honest host from another /24 was not admitted")
    });
    assert!(
        admitted < SECS(35),
        "seed {seed:#x}: the honest host waited {:?}",
        admitted - SECS(30)
    );
    let (same_ip, same_subnet, honest) = census(&world);
    assert_eq!(
        (same_ip, same_subnet, honest),
        (limits.max_per_ip, limits.max_per_subnet, true),
        "seed {seed:#x}: the victim's peers at the end"
    );
    report("distinct hosts", seed, sim.elapsed(), wall);
    world.trace.save("distinct_hosts");
    world.trace.lines()
}

#[test]
fn distinct_hosts_per_ip_and_subnet_caps() {
    let seed = harness::seed();
    let _r = Reproduce {
        seed,
        test: "scenarios::distinct_hosts_per_ip_and_subnet_caps",
    };
    distinct_hosts(seed);
}

// ---- crash ----------------------------------------------------------------------------

/// A producer, a witness and a node that crashes for 30 s and restarts on its store.
fn crash(seed: u64) -> Vec<String> {
    let wall = Instant::now();
    let mut world = World::new(seed);
    let names = ["p", "c", "w"];
    for (i, name) in names.iter().enumerate() {
        let spec = world.node(name, ip(10, 0, 3, 1 + i as u8), PORT, true);
        spec.producer = *name == "p";
        spec.discovers = names
            .iter()
            .filter(|n| *n != name)
            .map(|n| n.to_string())
            .collect();
    }
    let mut sim = harness::sim(seed);
    let ips: Vec<IpAddr> = names.iter().map(|n| world.specs[*n].ip).collect();
    for name in names {
        world.host(&mut sim, world.specs[name].ip, &[name]);
    }
    harness::set_latencies(&sim, seed, &ips, &ips);
    let c_ip = world.specs["c"].ip;

    world.run_until(&mut sim, SECS(20), |_, _| {});
    let before = world.head("c").expect("c runs");
    assert!(
        before >= 5,
        "seed {seed:#x}: c has {before} blocks before the crash"
    );
    assert_eq!(
        world.head("p"),
        Some(before),
        "seed {seed:#x}: c did not follow p"
    );
    let c_id = world.specs["c"].key.peer_id();
    world.forget("c");
    sim.crash(c_ip);
    world.run_until(&mut sim, SECS(50), |_, _| {});
    assert!(!sim.is_host_running(c_ip), "seed {seed:#x}: c still runs");
    let p_head = world.head("p").expect("p runs");
    assert!(
        p_head >= before + 10,
        "seed {seed:#x}: p stopped producing while c was down"
    );
    for name in ["p", "w"] {
        let view = world.view(name).expect("runs");
        assert!(
            !view.net.is_connected(&c_id),
            "seed {seed:#x}: {name} still counts the crashed c as a peer"
        );
    }
    let restarted_at = world.trace.lines().len();
    sim.bounce(c_ip);
    world.run_until(&mut sim, SECS(51), |_, _| {});
    let restarted = world.trace.lines()[restarted_at..]
        .iter()
        .find_map(|l| l.split_once(" c started head=").map(|(_, h)| h.to_string()))
        .unwrap_or_else(|| panic!("seed {seed:#x}: c did not restart"));
    assert_eq!(
        restarted.parse::<u64>().ok(),
        Some(before),
        "seed {seed:#x}: the restarted c's store lost blocks: head {restarted}, {before} before the crash"
    );
    let mut caught_up = None;
    world.run_until(&mut sim, SECS(110), |w, sim| {
        let head = |n| w.view(n).and_then(|v| v.chain).map(|c| c.head());
        if caught_up.is_none() && head("c").is_some() && head("c") == head("p") {
            caught_up = Some(sim.elapsed());
        }
    });
    let caught_up = caught_up
        .unwrap_or_else(|| panic!("seed {seed:#x}: the restarted c never caught up with p"));
    let c = world.view("c").expect("c runs again");
    for name in ["p", "w"] {
        assert!(
            c.net.is_connected(&world.specs[name].key.peer_id()),
            "seed {seed:#x}: the restarted c is not connected to {name}"
        );
    }
    eprintln!(
        "crash: c back at head {before}, caught up {:.1} s after the restart",
        (caught_up - SECS(50)).as_secs_f64()
    );
    report("crash", seed, sim.elapsed(), wall);
    world.trace.save("crash");
    world.trace.lines()
}

#[test]
fn crash_restarts_on_its_store() {
    let seed = harness::seed();
    let _r = Reproduce {
        seed,
        test: "scenarios::crash_restarts_on_its_store",
    };
    crash(seed);
}

// ---- churn ----------------------------------------------------------------------------

const MEMBERS: usize = 7;
const CHURN_FROM: Duration = Duration::from_secs(20);
const CHURN_UNTIL: Duration = Duration::from_secs(110);
const CHURN_EVERY: Duration = Duration::from_secs(10);
const SETTLE: Duration = Duration::from_secs(60);
/// Tasks one node may hold under the supervisor beyond two per peer (its connection's
/// and its eth session's; measured: 2 + 2 × peers, one more for a moment): the accept
/// loop and the dialer, dials (at most `max_concurrent_dials`, 8), pending handshakes
/// (counted apart) and goodbyes under way. A task leaked per connection passes it
/// within a few rounds of churn.
const SPARE_TASKS: usize = 2 + 8 + 4;

/// A producer and seven members, two more joining late; every 10 s one member leaves
/// (crashes) and one that left returns, then the network settles.
fn churn(seed: u64) -> Vec<String> {
    use rand::seq::SliceRandom;
    use rand::SeedableRng;

    let wall = Instant::now();
    let mut world = World::new(seed);
    let mut names: Vec<String> = vec!["p".into()];
    names.extend((1..=MEMBERS).map(|i| format!("m{i}")));
    let joiners = ["j1".to_string(), "j2".to_string()];
    let everyone: Vec<String> = names.iter().chain(joiners.iter()).cloned().collect();
    for (i, name) in everyone.iter().enumerate() {
        let spec = world.node(name, ip(10, 0, 4, 1 + i as u8), PORT, true);
        spec.producer = name == "p";
        spec.discovers = everyone.iter().filter(|n| *n != name).cloned().collect();
    }
    let ip_of = |w: &World, n: &str| w.specs[n].ip;
    let mut sim = harness::sim(seed);
    let mut hosts: Vec<IpAddr> = Vec::new();
    for name in &names {
        world.host(&mut sim, ip_of(&world, name), &[name]);
        hosts.push(ip_of(&world, name));
    }
    harness::set_latencies(&sim, seed, &hosts, &hosts);
    let mut rng = rand::rngs::StdRng::from_seed(harness::derive(seed, "churn"));
    let mut live: Vec<String> = names.clone();
    let mut down: Vec<String> = Vec::new();
    let mut max_tasks = 0;
    let mut max_pending = 0;
    let bounded = |w: &World,
                   sim: &turmoil::Sim<'_>,
                   max_tasks: &mut usize,
                   max_pending: &mut usize| {
        for (name, view) in w.views.borrow().iter() {
            let (peers, tasks, pending) = (
                view.net.peers().len(),
                view.net.task_count(),
                view.net.pending_handshakes(),
            );
            let eth = view.eth.as_ref().map_or(0, |e| e.len());
            assert!(
                peers <= everyone.len()
                    && eth <= peers
                    && tasks <= SPARE_TASKS + 2 * peers + pending
                    && pending <= 64,
                "seed {seed:#x}: at {:?} {name} holds {peers} peers, {eth} eth sessions, \
                 {tasks} tasks (cap {SPARE_TASKS} + 2 × peers + pending), {pending} pending handshakes",
                sim.elapsed()
            );
            *max_tasks = (*max_tasks).max(tasks);
            *max_pending = (*max_pending).max(pending);
        }
    };
    world.run_until(&mut sim, CHURN_FROM, |w, s| {
        bounded(w, s, &mut max_tasks, &mut max_pending)
    });
    let mut at = CHURN_FROM;
    let mut round = 0;
    while at < CHURN_UNTIL {
        // One member leaves (never the producer) and one that left comes back.
        let members: Vec<String> = live.iter().filter(|n| *n != "p").cloned().collect();
        if let Some(leaving) = members.choose(&mut rng).cloned() {
            world.forget(&leaving);
            sim.crash(ip_of(&world, &leaving));
            world
                .trace
                .push(format!("{} {leaving} crashed", sim.elapsed().as_millis()));
            live.retain(|n| *n != leaving);
            down.push(leaving);
        }
        if down.len() > 1 {
            let back = down.remove(0);
            sim.bounce(ip_of(&world, &back));
            live.push(back);
        }
        // The joiners arrive on the third and sixth rounds.
        if round == 2 || round == 5 {
            let joiner = &joiners[usize::from(round == 5)];
            let addr = ip_of(&world, joiner);
            world.host(&mut sim, addr, &[joiner]);
            hosts.push(addr);
            harness::set_latencies(&sim, seed, &[addr], &hosts);
            live.push(joiner.clone());
        }
        round += 1;
        at += CHURN_EVERY;
        world.run_until(&mut sim, at, |w, s| {
            bounded(w, s, &mut max_tasks, &mut max_pending)
        });
    }
    for back in down.drain(..) {
        sim.bounce(ip_of(&world, &back));
        live.push(back);
    }
    let end = CHURN_UNTIL + SETTLE;
    world.run_until(&mut sim, end, |w, s| {
        bounded(w, s, &mut max_tasks, &mut max_pending)
    });
    live.sort();
    let running: Vec<String> = world.views.borrow().keys().cloned().collect();
    assert_eq!(running, live, "seed {seed:#x}: the live nodes");
    let p = world.view("p").and_then(|v| v.chain).expect("p runs");
    let head = p.head();
    let produced = end.as_secs() / BLOCK_INTERVAL.as_secs();
    assert!(
        head.number >= produced * 3 / 4,
        "seed {seed:#x}: the producer made {} blocks in {produced} intervals",
        head.number
    );
    // The producer's head is as new as the last sample: the others get a moment more.
    let last_block = sim.elapsed() + BLOCK_INTERVAL / 2;
    world.run_until(&mut sim, last_block, |_, _| {});
    for name in &live {
        let chain = world.view(name).and_then(|v| v.chain).expect("live");
        assert!(
            chain.head().number >= head.number,
            "seed {seed:#x}: {name} ended at block {}, the producer at {}",
            chain.head().number,
            head.number
        );
        // Every block the producer made, on every live node's canonical chain.
        for n in 1..=head.number {
            assert_eq!(
                chain.canonical_hash_blocking(n).ok().flatten(),
                p.canonical_hash_blocking(n).ok().flatten(),
                "seed {seed:#x}: {name} lacks the producer's block {n}"
            );
        }
    }
    eprintln!(
        "churn: {} live nodes at block {}, at most {max_tasks} tasks and {max_pending} pending handshakes on a node",
        live.len(),
        head.number
    );
    report("churn", seed, sim.elapsed(), wall);
    world.trace.save("churn");
    world.trace.lines()
}

#[test]
fn churn_reaches_every_live_node_and_stays_bounded() {
    let seed = harness::seed();
    let _r = Reproduce {
        seed,
        test: "scenarios::churn_reaches_every_live_node_and_stays_bounded",
    };
    churn(seed);
}
