// CNI results: one internal model (the 1.1.0 superset), parsed from any
// supported version (prevResult, delegated IPAM output) and written in the
// version the runtime asked for.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "errors.h"

namespace skiff::cni {

struct Interface {
    std::string name;
    std::string mac;
    std::optional<int> mtu;
    std::string sandbox;  // netns path; empty for host-side interfaces
};

struct IpConfig {
    std::string address;  // CIDR form, e.g. "10.244.1.2/32"
    std::string gateway;  // empty if none
    std::optional<int> interface;
};

struct Route {
    std::string dst;
    std::string gw;
    std::optional<int> mtu, advmss, priority, table, scope;  // 1.1.0 fields
};

struct CniResultModel {
    std::vector<Interface> interfaces;
    std::vector<IpConfig> ips;
    std::vector<Route> routes;
    nlohmann::json dns = nlohmann::json::object();
};

// Parse a result of any supported version (the input's "cniVersion" picks
// the dialect: 0.3.x/0.4.0 IPs carry "version").
CniResult<CniResultModel> parse_result(const nlohmann::json& j);

// Serialise for `version` (one of kSupportedVersions).
nlohmann::json result_to_json(const CniResultModel& r, const std::string& version);

// Append ours to prev, shifting our interface indices past prev's.
CniResultModel merge_results(CniResultModel prev, const CniResultModel& ours);

nlohmann::json error_to_json(const CniError& e, const std::string& version);

// The one way JSON leaves the plugin (stdout, state files, a delegated
// plugin's stdin): bytes that are not UTF-8 (an environment variable, a
// delegate's stderr) become U+FFFD instead of throwing.
std::string wire(const nlohmann::json& j);

}  // namespace skiff::cni
