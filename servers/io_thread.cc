// io_thread.cc — IoThread's own code (engine.h): the default StartCall, a
// call that runs the handler to its end at its first Resume and never parks.
// Apart from MakeEngine, so that code that only drives an IoThread (the
// protocols, the http fuzzer) links without every engine.
#include <string>
#include <utility>

#include "servers/engine.h"

namespace gillab::servers {
namespace {

// IoThread::StartCall's default: the handler runs to its end at the first Resume.
class SynchronousCall final : public HandlerCall {
 public:
  SynchronousCall(IoThread& io, size_t id, std::string_view request) : io_(io), id_(id), request_(request) {}
  Step Resume() override {
    reply_ = io_.HandleWith(id_, request_);
    return Step::kDone;
  }
  int64_t wait_us() const override { return 0; }
  std::string TakeReply() override { return std::move(reply_); }

 private:
  IoThread& io_;
  size_t id_;
  std::string request_;
  std::string reply_;
};

}  // namespace

std::unique_ptr<HandlerCall> IoThread::StartCall(size_t id, std::string_view request) {
  return std::make_unique<SynchronousCall>(*this, id, request);
}

}  // namespace gillab::servers
