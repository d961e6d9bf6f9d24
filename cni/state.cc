#include "state.h"

#include <nlohmann/json.hpp>

#include "common/files.h"
#include "result.h"

namespace skiff::cni {

using nlohmann::json;

StateStore::StateStore(const std::string& state_dir, const std::string& network)
    : dir_(state_dir + "/networks/" + network) {}

std::string StateStore::path(const std::string& cid, const std::string& ifname) const {
    // ':' is legal in neither a container ID nor an interface name.
    return dir_ + "/attachments/" + cid + ":" + ifname + ".json";
}

Status StateStore::save(const AttachmentState& a) {
    SKIFF_TRY(mkdir_p(dir_ + "/attachments", 0700));
    json j = {{"containerID", a.container_id},
              {"ifname", a.ifname},
              {"netns", a.netns},
              {"hostVeth", a.host_veth},
              {"ip", a.ip},
              {"ipamDelegated", a.ipam_delegated},
              {"podNamespace", a.pod_namespace},
              {"podName", a.pod_name},
              {"podUID", a.pod_uid},
              {"phase", a.phase}};
    return write_file_atomic(path(a.container_id, a.ifname), wire(j) + "\n");
}

static std::optional<AttachmentState> decode(const std::string& s) {
    json j = json::parse(s, nullptr, false);
    if (j.is_discarded() || !j.is_object()) return std::nullopt;
    auto str = [&](const char* k) { return j.contains(k) && j[k].is_string() ? j[k].get<std::string>() : ""; };
    AttachmentState a;
    a.container_id = str("containerID");
    a.ifname = str("ifname");
    a.netns = str("netns");
    a.host_veth = str("hostVeth");
    a.ip = str("ip");
    a.ipam_delegated = j.value("ipamDelegated", false);
    a.pod_namespace = str("podNamespace");
    a.pod_name = str("podName");
    a.pod_uid = str("podUID");
    a.phase = str("phase");
    if (a.container_id.empty() || a.ifname.empty()) return std::nullopt;
    return a;
}

Result<std::optional<AttachmentState>> StateStore::load(const std::string& cid, const std::string& ifname) {
    auto s = read_file(path(cid, ifname));
    if (!s) {
        if (s.error().code == ENOENT) return std::optional<AttachmentState>{};
        return s.error();
    }
    return decode(*s);
}

// State files are written without a shared lock: only the temporary files
// of writers that are gone are safe to take.
Status StateStore::remove(const std::string& cid, const std::string& ifname) {
    remove_temp_files(dir_ + "/attachments", TempFiles::OfDeadWriters);
    return remove_file(path(cid, ifname));
}

Result<std::vector<AttachmentState>> StateStore::list() {
    remove_temp_files(dir_ + "/attachments", TempFiles::OfDeadWriters);
    SKIFF_ASSIGN_OR_RETURN(auto names, list_dir(dir_ + "/attachments"));
    std::vector<AttachmentState> out;
    for (const auto& n : names) {
        if (n.size() < 6 || n.compare(n.size() - 5, 5, ".json") != 0) continue;
        auto s = read_file(dir_ + "/attachments/" + n);
        if (!s) continue;
        if (auto a = decode(*s)) out.push_back(std::move(*a));
    }
    return out;
}

}  // namespace skiff::cni
