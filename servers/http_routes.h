// http_routes.h — which handler answers which HTTP target (design §11).
//
// One table, built once per server: every route names a handler program that
// the engine loaded (EngineOptions::extra_handlers, called through
// IoThread::HandleWith with the route's handler id), so every target runs its
// handler under the lock, as a Python server's handler runs under the GIL.
//
//   POST /echo        echo    request: the body; reply: the body
//   GET  /primes/N    primes  request: "N" (the path's tail); reply: the count of primes <= N
//   GET  /static      echo    request: a fixed 6,600-byte page (PyParallel's); reply: the page
//   GET  /            echo    request: a short fixed text
//   GET|POST /PATH    FILE    mounted with --mount /PATH=FILE: request is the body (POST)
//                              or the path's tail after /PATH/ (GET)
//
// A known path asked with another method is 405, an unknown path 404.
//
//   HttpRoutes routes({"/hello=hello.gasm"});      // UsageError on a bad mount
//   engine_options.extra_handlers = routes.handler_names();
//   HttpRoutes::Match m = routes.Find("GET", "/primes/100");  // m.handler_id, m.request
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

namespace gillab::servers {

constexpr size_t kHttpStaticPageBytes = 6600;

class HttpRoutes {
 public:
  enum class Request { kBody, kTail, kFixed };
  struct Route {
    std::string method;    // "GET", "POST", or "" for both
    std::string path;      // exact, or a prefix when it ends with '/'
    std::string handler;   // echo | primes | FILE
    Request request;       // what the handler gets
    std::string fixed;     // kFixed: the request bytes
  };
  struct Match {
    int status = 200;      // 200, 404 or 405
    size_t handler_id = 0;  // for IoThread::HandleWith
    std::string_view request;  // points into the body, the target or the route
  };

  // `mounts`: "/PATH=FILE" each; throws UsageError on a malformed one or a
  // path that is already a target.
  explicit HttpRoutes(const std::vector<std::string>& mounts = {});
  // The handlers in handler-id order from id 1 (id 0 is the engine's own
  // --handler, unused by http): what EngineOptions::extra_handlers must be.
  const std::vector<std::string>& handler_names() const { return handler_names_; }
  const std::vector<Route>& routes() const { return routes_; }
  Match Find(std::string_view method, std::string_view target, std::string_view body) const;
  // Adds a handler that is not a route (the vm parser); returns its id.
  size_t AddHandler(const std::string& name);

 private:
  size_t HandlerId(const std::string& name);
  std::vector<Route> routes_;
  std::vector<size_t> route_handler_ids_;  // by route
  std::vector<std::string> handler_names_;
};

// The /static page: kHttpStaticPageBytes of printable text.
const std::string& HttpStaticPage();

}  // namespace gillab::servers
