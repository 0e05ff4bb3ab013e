// server_kinds.h — the table of server kinds (design §4): what every command
// knows about a kind, as data.
//
// One row per kind: its name, transport, how its endpoint is named, the load
// client's connection type, a one-line summary and its traits. `gillab list`,
// `serve` (flag check, default endpoint), `load` (connection type), the
// experiment loader (validation, cross-setting checks) and the runner (the
// endpoint of each run) all read this table; MakeServer (server.cc) holds the
// factories, one per row, in a table of its own so that code which only
// checks names (the experiment loader and its fuzzer) links without the
// servers themselves.
//
// A new server kind: its own file with MakeXServer, one row here, one row in
// server.cc's factory table, its source in servers/CMakeLists.txt.
//
//   const ServerKind& kind = RequireServerKind("multiprocessing");  // UsageError if unknown
//   std::string endpoint = DefaultEndpoint(kind, "gillab-42");        // "ipc://gillab-42"
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace gillab::servers {

// How a server reads requests: a byte stream it frames itself (4-byte length
// prefix, servers/frame.h) or whole messages handed over by a library.
enum class Transport { kStream, kMessage };

// How a kind's endpoint is written: tcp://HOST:PORT, or ipc://NAME where NAME
// must be unique per running server (the runner picks one per run).
enum class EndpointScheme { kTcp, kIpc };

struct ServerKind {
  std::string_view name{};
  Transport transport = Transport::kStream;
  EndpointScheme endpoint_scheme = EndpointScheme::kTcp;
  // The load client's connection type (client_connection.h): "stream", "zmq" or "multiprocessing".
  std::string_view client_connection{};
  std::string_view summary{};
  // Serves one connection at a time: an experiment must use connections = 1.
  bool one_connection_at_a_time = false;
  // Runs handlers on a pool of --workers N threads (setting `workers`):
  // transactional and parallel.
  bool worker_pool = false;
  // Runs the framework prelude around each handler call (`framework_clock`,
  // interp/framework.h): the transactional kind.
  bool runs_framework = false;
  // Runs each handler call in a parallel context (`context_max_bytes`,
  // interp/context_arena.h): the parallel kind.
  bool parallel_contexts = false;
  // Runs its connections as coroutines on one hub thread (`hub_release`,
  // design §10): the green kind.
  bool hub = false;
};

// Every kind, in the order `gillab list` prints them.
const std::vector<ServerKind>& ServerKindTable();
const ServerKind* FindServerKind(std::string_view name);
// Throws UsageError "unknown server 'X' (expected one of: zmq, ...)".
const ServerKind& RequireServerKind(std::string_view name);
// The names, in table order (for CLI11's IsMember and the experiment loader).
const std::vector<std::string>& ServerKinds();

// The endpoint a server of this kind binds when none is given: tcp://127.0.0.1:0
// (any free port), or ipc://IPC_NAME for kinds named by ipc.
std::string DefaultEndpoint(const ServerKind& kind, std::string_view ipc_name);

std::string_view TransportName(Transport transport);

// The stream protocols (`--protocol`: "frame", "http"; their factories are in
// stream_protocol.cc) and the http request parsers (`--http-parser`: "native",
// "vm"). Data here so that the settings schema links without the servers.
const std::vector<std::string>& StreamProtocolNames();
const std::vector<std::string>& HttpParserNames();
// green: when the hub releases the engine's lock (design §10): every_call | poll.
const std::vector<std::string>& HubReleaseNames();

}  // namespace gillab::servers
