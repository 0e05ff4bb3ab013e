// server_kinds.cc — ServerKinds() (server.h), apart from MakeServer so that
// code which only checks a server name (the experiment loader and its fuzzer)
// links without the servers themselves.
#include "servers/server.h"

namespace gillab::servers {

const std::vector<std::string>& ServerKinds() {
  static const std::vector<std::string> kinds = {"zmq", "multiprocessing", "blocking", "nonblocking",
                                                 "threaded"};
  return kinds;
}

}  // namespace gillab::servers
