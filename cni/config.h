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
    bool require_agent = false;                 // STATUS needs skiff-agent to have programmed podCIDR
    nlohmann::json ipam;                        // null: built-in allocator on podCIDR
    nlohmann::json dns;                         // passed through to the result
    nlohmann::json prev_result;                 // null when absent
    std::vector<Attachment> valid_attachments;  // GC only
    nlohmann::json raw;                         // the whole config, for IPAM delegation

    bool delegated_ipam() const { return !ipam.is_null(); }
    std::string ipam_type() const;
};

// The plugin's stdin, decoded once at the door (run_plugin) with the size
// and nesting limits; everything after works on this, never on the bytes.
struct StdinConfig {
    bool present;                       // stdin held anything (VERSION may come without)
    CniResult<nlohmann::json> decoded;  // or why not (code 6)
    // Its "cniVersion" when that is a supported version, else "": the
    // version errors answer in.
    std::string version;
};
StdinConfig decode_stdin(const std::string& bytes);

// Parse and validate the network config. Errors carry codes 1, 2, 6 or 7.
CniResult<NetConf> parse_netconf(const StdinConfig& in);

// CNI names: network names and container IDs ([a-zA-Z0-9][a-zA-Z0-9_.-]*).
bool valid_cni_name(const std::string& s);
// Linux interface names as the CNI spec restricts them; empty if valid,
// otherwise why not.
std::string ifname_problem(const std::string& s);

}  // namespace skiff::cni
