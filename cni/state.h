// Per-attachment state on disk, so DEL, CHECK and GC work without
// prevResult and without the container's netns.
//   <stateDir>/networks/<network>/attachments/<containerID>:<ifname>.json
//   <stateDir>/networks/<network>/ipam/           (built-in IPAM leases)
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "common/result.h"

namespace skiff::cni {

struct AttachmentState {
    std::string container_id;
    std::string ifname;
    std::string netns;
    std::string host_veth;
    std::string ip;  // "10.244.1.2" (empty until IPAM ran)
    bool ipam_delegated = false;
    std::string pod_namespace;
    std::string pod_name;
    std::string pod_uid;
    std::string phase;  // "adding" until ADD completes, then "ready"
};

class StateStore {
public:
    StateStore(const std::string& state_dir, const std::string& network);

    Status save(const AttachmentState& a);
    Result<std::optional<AttachmentState>> load(const std::string& container_id, const std::string& ifname);
    Status remove(const std::string& container_id, const std::string& ifname);
    Result<std::vector<AttachmentState>> list();

    std::string ipam_dir() const { return dir_ + "/ipam"; }

private:
    std::string path(const std::string& cid, const std::string& ifname) const;
    std::string dir_;
};

}  // namespace skiff::cni
