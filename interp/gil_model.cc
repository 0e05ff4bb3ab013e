// gil_model.cc — see gil_model.h.
#include "interp/gil_model.h"

namespace gillab::interp {

GilModel::GilModel(gil::Gil& gil) : gil_(gil), traits_{.exclusive = gil.traits().exclusive} {}

GilModel::GilModel(std::unique_ptr<gil::Gil> gil)
    : owned_(std::move(gil)), gil_(*owned_), traits_{.exclusive = gil_.traits().exclusive} {}

std::unique_ptr<ExecThread> GilModel::Attach(gil::Role role, std::string name, int priority) {
  return std::make_unique<GilThread>(gil_.Attach(role, std::move(name), priority));
}

}  // namespace gillab::interp
