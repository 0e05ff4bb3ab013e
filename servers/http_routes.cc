// http_routes.cc — see http_routes.h.
#include "servers/http_routes.h"

#include <algorithm>

#include <fmt/core.h>

#include "gil/error.h"

namespace gillab::servers {

const std::string& HttpStaticPage() {
  static const std::string page = [] {
    std::string text;
    const std::string_view line = "gillab static page: the 6,600 bytes PyParallel's wrk runs fetched.\n";
    while (text.size() < kHttpStaticPageBytes) text.append(line);
    text.resize(kHttpStaticPageBytes);
    return text;
  }();
  return page;
}

HttpRoutes::HttpRoutes(const std::vector<std::string>& mounts) {
  routes_ = {
      {"POST", "/echo", "echo", Request::kBody, ""},
      {"GET", "/primes/", "primes", Request::kTail, ""},
      {"GET", "/static", "echo", Request::kFixed, HttpStaticPage()},
      {"GET", "/", "echo", Request::kFixed, "gillab: try POST /echo, GET /primes/N, GET /static\n"},
  };
  for (const std::string& mount : mounts) {
    const size_t eq = mount.find('=');
    if (eq == std::string::npos || eq < 2 || mount[0] != '/' || eq + 1 == mount.size()) {
      throw UsageError(fmt::format("--mount expects /PATH=FILE, got '{}'", mount));
    }
    std::string path = mount.substr(0, eq);
    while (path.size() > 1 && path.back() == '/') path.pop_back();
    const bool taken = std::any_of(routes_.begin(), routes_.end(), [&](const Route& r) {
      return r.path == path || r.path == path + "/";
    });
    if (taken) throw UsageError(fmt::format("--mount {}: that path is already a target", path));
    routes_.push_back({"", path, mount.substr(eq + 1), Request::kBody, ""});
  }
  for (const Route& route : routes_) route_handler_ids_.push_back(HandlerId(route.handler));
}

size_t HttpRoutes::HandlerId(const std::string& name) {
  auto it = std::find(handler_names_.begin(), handler_names_.end(), name);
  if (it != handler_names_.end()) return static_cast<size_t>(it - handler_names_.begin()) + 1;
  handler_names_.push_back(name);
  return handler_names_.size();
}

size_t HttpRoutes::AddHandler(const std::string& name) { return HandlerId(name); }

HttpRoutes::Match HttpRoutes::Find(std::string_view method, std::string_view target, std::string_view body) const {
  // The query string is not part of the route.
  target = target.substr(0, target.find('?'));
  Match match;
  match.status = 404;
  for (size_t i = 0; i < routes_.size(); ++i) {
    const Route& route = routes_[i];
    const bool prefix = route.path.size() > 1 && route.path.back() == '/';
    std::string_view tail;
    if (prefix) {
      if (target.substr(0, route.path.size()) != route.path) continue;
      tail = target.substr(route.path.size());
    } else if (target == route.path) {
      tail = {};
    } else if (route.method.empty() && target.size() > route.path.size() &&
               target.substr(0, route.path.size()) == route.path && target[route.path.size()] == '/') {
      tail = target.substr(route.path.size() + 1);  // a mount takes the path's tail
    } else {
      continue;
    }
    const bool method_ok = route.method.empty() ? (method == "GET" || method == "POST") : method == route.method;
    if (!method_ok) {
      match.status = 405;
      continue;
    }
    match.status = 200;
    match.handler_id = route_handler_ids_[i];
    switch (route.request) {
      case Request::kBody:
        match.request = (route.method.empty() && method == "GET") ? tail : body;
        break;
      case Request::kTail:
        match.request = tail;
        break;
      case Request::kFixed:
        match.request = route.fixed;
        break;
    }
    return match;
  }
  return match;
}

}  // namespace gillab::servers
