// costs.h — what things cost in virtual time, and how the simulated OS
// schedules (design §13). Every default says where it was measured; every
// field can be overridden from the command line (`gillab simulate`) or an
// experiment file.
//
// The reference machine is the project's 2-vCPU AMD EPYC KVM guest
// (results/microbench.md). Figures there are from a quiet host unless noted.
#pragma once

#include <cstdint>

namespace gillab::sim {

// Costs of the simulated program, charged to the thread that runs it.
struct CostTable {
  // One VM instruction, any class: results/microbench.md, "VM speed": the
  // countdown loop (2 dispatches per iteration) runs 2.10 ns per iteration
  // on a quiet host, 3.99 ns under load -> ~1.05 ns per dispatch on a quiet
  // host. cpu_spin (6 dispatches per iteration, one of them a native) ran
  // 7.9 ns per iteration in `gillab vm cpu_spin` on this machine (1.3 ns per
  // dispatch; the native call costs more than the others). Default: 1.3 ns.
  double vm_instruction_ns = 1.3;
  // One clock read (NowNs): results/microbench.md / clock.h, a bare TSC read
  // scaled, ~9 ns on the reference VM.
  int64_t clock_read_ns = 9;
  // One lock operation that does not wait (Enter/Leave/BeginBlocking/
  // EndBlocking/Yield's bookkeeping): uncontended Acquire+Release with
  // statistics 37-41 ns (microbench.md, ticket/priority/newgil) -> ~20 ns each.
  int64_t lock_op_ns = 20;
  // The stm model's own work (interp/stm_model.h), on top of its VM
  // instructions; charged only under a model whose units may abort.
  // interp/stm_benchmark.cc in thread CPU time, each minus its baseline under
  // `none`, median of 3 on this machine under load (2026-12-03):
  // one unit's begin and commit with nothing held, BM_StmUnit 92.7 - 50.0 ns
  // (two clock reads, the bookkeeping, the figures' atomics) ...
  int64_t stm_unit_ns = 42;
  // ... and one heap access the VM reports to it, BM_StmAccess 32.4 - 9.2 ns
  // (the barrier's hash lookup; a first access's CAS is amortised). A unit's
  // first write of an object costs ~115 ns more (BM_StmConflictFree: 180 ns
  // per unit with one object written, minus the two above): not charged apart,
  // since the hooks do not tell a first access from a later one; it is one
  // object per unit in the stm_tornado handler (0.1 µs of ~4 ms).
  int64_t stm_access_ns = 23;
  // One round of a spin-wait's backoff (stm_model.cc's Backoff, the
  // Platform::Pause kinds), in thread CPU time: a PAUSE plus the re-check,
  // BM_PauseInstruction 29.9 ns; a sched_yield with nothing else to run,
  // BM_SchedYield 649 ns.
  int64_t spin_pause_ns = 30;
  int64_t yield_ns = 650;
};

// The simulated kernel: cores, run queues, time slices, wake-up latencies.
struct OsModel {
  int cores = 2;
  // A runnable thread is preempted after this long on a core when another
  // thread waits in that core's run queue. Linux CFS with 2 CPUs:
  // sched_latency 6 ms * (1 + log2 2) / nr_running..., min granularity
  // 0.75-3 ms; 3 ms is the slice two CPU-bound threads get on this machine.
  int64_t time_slice_ns = 3'000'000;
  // A woken thread that was queued behind a running one preempts it once
  // that one has run this long (CFS wake-up preemption:
  // sched_wakeup_granularity 1 ms * (1 + log2 CPUs) = 2 ms with 2 CPUs).
  int64_t wakeup_granularity_ns = 2'000'000;
  // From a futex wake to the woken thread running, when it lands on the
  // waker's core (which must first switch away): half the same-core futex
  // ping-pong round trip, 3.5 us (microbench.md, quiet host) -> 1.75 us.
  int64_t wake_same_core_ns = 1'750;
  // The same to another, running-or-just-idle core: an IPI on a KVM guest.
  int64_t wake_cross_core_ns = 5'000;
  // Extra when the target core is halted idle (exit from the idle state,
  // plus the hypervisor's halt-polling miss): the two-core futex ping-pong
  // round trip is 35-45 us (microbench.md) -> ~20 us one way, of which
  // wake_cross_core_ns is the IPI; the rest (15 us) is the idle exit.
  int64_t idle_exit_ns = 15'000;
  // A wake-up's latency varies: each one adds a delay drawn uniformly from
  // [0, wake_jitter_ns]. 0 (the default) draws nothing: a perfectly regular
  // OS. The real two-core futex ping-pong spreads over 35-45 us per round
  // trip (microbench.md), ~5 us per wake. Without any jitter a policy whose
  // choices depend on who is awake first can lock into one periodic pattern
  // that real noise breaks (newgil with 2+ cpu threads: two of them trade
  // the lock and the others starve; results/reference/sim_serve/README.md).
  int64_t wake_jitter_ns = 0;
  // Which of several threads sleeping on one address a wake picks: false,
  // one drawn from the PRNG; true, the oldest. Linux queues a futex's
  // waiters in FIFO order, but what decides who gets a lock is the whole
  // path (glibc's condition-variable groups, a waiter that has not slept
  // yet taking the signal, who runs first): in real newgil traces on this
  // machine (`gillab contend --policy newgil --cpu-threads 2 --trace`, io
  // waiting with one cpu thread) the io thread, the oldest waiter, got the
  // lock at 45-87% of the switches another thread asked for, not at all of
  // them, and its wait is bimodal (one or two switch intervals) as with a
  // drawn order; with the oldest first it always comes at the first.
  bool fifo_wake_order = false;
  // A timed wait or sleep ends somewhere in [deadline, deadline + this],
  // drawn: Linux's default timer slack for a normal thread is 50 us
  // (prctl PR_GET_TIMERSLACK), and `gillab vm` measures sleep_us(1000)
  // returning 1.05-1.06 ms later on this machine. Without it every periodic
  // thread of a simulation keeps its phase forever, which no real one does.
  // (BM_Nanosleep50us, interp/stm_benchmark.cc, measured 109 µs over under
  // load: the slack, the wake-up modelled apart, and the neighbours.)
  int64_t timer_slack_ns = 50'000;
  // A context switch on one core (switching to a thread from the run queue).
  // From the same-core ping-pong: 3.5 us round trip = 2 wakes + 2 switches;
  // the switch itself ~1 us.
  int64_t context_switch_ns = 1'000;
};

// The virtual connection of a simulated server run (sim_serve.h): what one
// send or recv costs the thread that makes it, and how long a message is in
// flight. Measured 2026-12-03 on the reference VM, loopback TCP with
// TCP_NODELAY, 64-byte messages, the data already there (no wait), thread CPU
// time over 200,000 send+recv pairs, clock reads subtracted, load average ~12
// on the 2 cores (other helpers compiling): a pair costs 8.4-9.7 us, split
// about evenly (send 4.7 us, recv 4.6 us with one clock read of ~0.7 us each
// taken off). The program: results/reference/sim_serve/README.md.
struct TransportCosts {
  int64_t send_ns = 4'500;  // one send(2) of a request or reply, on the sender's core
  int64_t recv_ns = 4'500;  // one recv(2) that finds the message there, on the receiver's core
  // From a send's end to its message being readable by the peer, not
  // counting the peer's wake-up (OsModel's wake latencies, which run at the
  // same time: the peer waits for the later of the two). Calibrated so that
  // the simulated blocking server with no CPU thread matches the real one's
  // p50 (results/reference/sim_serve/README.md).
  int64_t one_way_ns = 0;
};

}  // namespace gillab::sim
