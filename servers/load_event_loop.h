// load_event_loop.h — `gillab load` for many connections (C10K, design §10):
// every connection on one thread's epoll loop instead of a thread each.
//
// RunLoad (load_client.h) hands the stream framing over here from
// kEventLoopMinConnections connections on; the loads are the same: closed loop
// (one request in flight per connection, think_us after each reply, latency
// from the send) or open loop (request k of connection i intended at
// t0 + (k*C + i)/rate, latency from that intended time, so a stalled server
// shows in every request it delayed). Warm-up requests run first, closed
// loop without think time, unmeasured; t0 is taken when they are done.
// Connections are opened before t0 (blocking connects, then non-blocking).
// A connection that fails, or stays silent for reply_timeout_ms with a
// request in flight, counts one error and stops; its unsent requests count
// in `unsent`.
//
//   RunFrameLoadOnEpoll(options, expect_echo, [&](std::string& out) { payloads.Next(out); }, result);
#pragma once

#include <functional>
#include <string>

#include "servers/load_client.h"

namespace gillab::servers {

// From this many connections on, RunLoad drives the frame protocol on one epoll loop.
constexpr int kEventLoopMinConnections = 128;

// Fills result's counts, latency and seconds. next_payload writes the next
// request's bytes (called on this thread only).
void RunFrameLoadOnEpoll(const LoadOptions& options, bool expect_echo,
                         const std::function<void(std::string&)>& next_payload, LoadResult& result);

}  // namespace gillab::servers
