#include "conflist.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include <nlohmann/json.hpp>

#include "common/fd.h"
#include "common/files.h"
#include "common/log.h"

namespace skiff::agent {

using nlohmann::json;

std::string conflist_for(const AgentConfig& cfg, const Ipv4Prefix& pod_cidr) {
    json plugin = {{"type", "skiff"},     {"podCIDR", pod_cidr.str()}, {"clusterCIDR", cfg.cluster_cidr.str()},
                   {"mtu", cfg.mtu},      {"pinPath", cfg.pin_path},   {"stateDir", cfg.state_dir},
                   {"requireAgent", true}};
    if (!cfg.cni_log_file.empty()) plugin["logFile"] = cfg.cni_log_file;
    json conf = {{"cniVersion", cfg.cni_version}, {"name", "skiff"}, {"plugins", json::array({plugin})}};
    return conf.dump(2) + "\n";
}

Status write_conflist(const AgentConfig& cfg, const Ipv4Prefix& pod_cidr) {
    std::string path = cfg.cni_conf_dir + "/10-skiff.conflist";
    std::string want = conflist_for(cfg, pod_cidr);
    if (auto have = read_file(path); have && *have == want) return ok();
    SKIFF_TRY(mkdir_p(cfg.cni_conf_dir, 0755));
    SKIFF_TRY(write_file_atomic(path, want));
    // containerd 1.6 reloads its CNI config on a write, not on a create (a
    // rename is one): write the same bytes over themselves, so a reader
    // never sees anything but the whole file and the runtime hears of it.
    if (UniqueFd fd(::open(path.c_str(), O_WRONLY | O_CLOEXEC));
        !fd.valid() || ::pwrite(fd.get(), want.data(), want.size(), 0) < 0)
        log::warn("cannot touch " + path + " for runtimes that watch for writes: " + std::strerror(errno));
    log::info("wrote " + path + " (PodCIDR " + pod_cidr.str() + ")");
    return ok();
}

}  // namespace skiff::agent
