// sim_serve.h — one experiment run of a server in virtual time on N
// simulated cores (design §13): a server kind with the toy engine, its K CPU
// threads and the load client, all virtual threads of one Simulator.
//
// What is real and what is a model. The engine is the real ToyEngine: its
// execution model is the real policy wrapped in SimModel (EngineOptions::
// wrap_model), its CPU threads run cpu_spin on the real VM and are started
// by Simulator::Spawn (EngineOptions::spawn_thread), every request runs the
// real handler through IoThread::Handle, and every lock release and re-take
// is the real BlockingSection. The server's loop is a model of the server
// kind's loop, one function per kind in a table (SimServerKinds(): a new
// kind is one row): `blocking` (one I/O thread, one connection at a time:
// {recv} -> Handle -> {send}, braces are blocking sections) and `threaded`
// (an acceptor and one I/O thread per connection). The transport is a
// virtual connection: a mailbox per direction whose waits are gil::FutexWord
// waits (simulator waits); each send and recv charges its syscall cost on
// the caller's core and a message becomes readable TransportCosts::one_way_ns
// after its send (costs.h says where each default comes from). The load
// client is load_client.h's closed loop (connections, think_us, warmup, a
// barrier before the measured requests) or open loop (rate, latency from the
// intended send time), latency from before the send to after the reply's recv.
//
// Not modelled: the stream protocol's framing (a request is one message),
// partial sends and recvs, message size (the copy costs are per call),
// accept's backlog limit, reply timeouts, OS priorities and CPU pinning
// (accepted and ignored by the command), http, and every server kind but
// the rows of SimServerKinds().
//
// Output in the real formats: the load's LoadResult (ToJson: `gillab load
// --json`'s file) and the serve exit JSON (`gillab serve`'s last line: the
// engine's Stats() plus server, endpoint, requests...), plus the simulation's
// fields (mode "simulate", cores, seed, costs, counters). Thread ids are
// replaced by attach order and host figures (RSS) are left out: the same
// seed gives the same bytes.
//
//   SimServeOptions o;  o.engine.cpu_threads = 1;  o.load.think_us = 1000;  o.sim.os.cores = 2;
//   SimServeResult r = RunSimServe(o);   // r.load.ToJson(), r.serve
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "servers/engine.h"
#include "servers/load_client.h"
#include "sim/costs.h"
#include "sim/sim_model.h"
#include "sim/simulator.h"

namespace gillab::sim {

struct SimServeOptions {
  std::string server = "blocking";  // a row of SimServerKinds()
  servers::EngineOptions engine;    // engine "toy"; RunSimServe sets the simulation hooks
  int64_t max_message_bytes = 16777216;  // a larger request closes its connection
  std::string trace_path;           // non-empty: the lock timeline (virtual ns), as serve --trace
  servers::LoadOptions load;        // seed: the payloads' (the command sets it to the simulation's seed)
  SimOptions sim;
  SimModelOptions model;
  TransportCosts transport;
};

struct SimServeResult {
  servers::LoadResult load;
  nlohmann::json serve;       // `gillab serve`'s exit JSON plus the simulation's fields
  SimStats stats;
  uint64_t instructions = 0;  // simulated VM instructions (charged quanta)
  double host_seconds = 0;    // wall time on this host (not deterministic, not in the JSON)
};

// The server kinds simulate-serve models, in table order.
std::vector<std::string> SimServerKindNames();

// Throws UsageError for options it does not model (naming what it does),
// SimError when the simulation cannot finish (a deadlock, the time limit).
SimServeResult RunSimServe(const SimServeOptions& options);

}  // namespace gillab::sim
