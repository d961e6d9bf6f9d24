// The plugin's network configuration (the plugin entry of a conflist, as
// libcni hands it over on stdin), parsed and validated.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/ipv4.h"
#include "errors.h"

namespace skiff::cni {

inline constexpr const char* kDefaultPinPath = "/sys/fs/bpf/skiff";
inline constexpr const char* kDefaultStateDir = "/var/lib/skiff";
inline constexpr size_t kMaxConfigBytes = 1 << 20;
inline constexpr int kMaxConfigDepth = 32;

struct Attachment {  // an entry of cni.dev/valid-attachments
    std::string container_id;
    std::string ifname;
};

struct NetConf {
    std::string cni_version;
    std::string name;
    std::string type;
    std::optional<Ipv4Prefix> pod_cidr;
    std::optional<Ipv4Prefix> cluster_cidr;
    unsigned mtu = 1500;
    std::string pin_path = kDefaultPinPath;
    std::string state_dir = kDefaultStateDir;
    std::string log_file;
    bool require_agent = false;   // STATUS needs skiff-agent to have programmed podCIDR
    nlohmann::json ipam;          // null: built-in allocator on podCIDR
    nlohmann::json dns;           // passed through to the result
    nlohmann::json prev_result;   // null when absent
    std::vector<Attachment> valid_attachments;  // GC only
    nlohmann::json raw;           // the whole config, for IPAM delegation

    bool delegated_ipam() const { return !ipam.is_null(); }
    std::string ipam_type() const;
};

// Decode stdin JSON with size and nesting limits (code 6 on failure).
CniResult<nlohmann::json> decode_json(const std::string& bytes);

// Parse and validate a network config. Errors carry codes 1, 2, 6 or 7.
CniResult<NetConf> parse_netconf(const std::string& bytes);
// The same for a config already decoded by decode_json().
CniResult<NetConf> netconf_from(const nlohmann::json& decoded);

// CNI names: network names and container IDs ([a-zA-Z0-9][a-zA-Z0-9_.-]*).
bool valid_cni_name(const std::string& s);
// Linux interface names as the CNI spec restricts them; empty if valid,
// otherwise why not.
std::string ifname_problem(const std::string& s);

}  // namespace skiff::cni
