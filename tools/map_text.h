// skiffctl's text rendering of the map commands' JSON documents: tables
// of nodes, services, tracked connections and masqueraded flows, and the
// entries of `map dump`.
#pragma once

#include <string>

#include <nlohmann/json.hpp>

namespace skiff::ctl {

std::string node_text(const nlohmann::json& d);     // node list
std::string service_text(const nlohmann::json& d);  // service list
std::string ct_text(const nlohmann::json& d);       // ct list
std::string nat_text(const nlohmann::json& d);      // nat list
std::string dump_text(const nlohmann::json& d);     // map dump

}  // namespace skiff::ctl
