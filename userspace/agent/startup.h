// What skiff-agent does before its loop: the source the config names, with
// the node's own address and uplink learned from it where the config leaves
// them out (Kubernetes), and the DaemonSet's init step.
#pragma once

#include <atomic>
#include <memory>
#include <string>

#include "common/result.h"
#include "config.h"
#include "k8s_source.h"
#include "source.h"

namespace skiff::agent {

struct StartedSource {
    std::unique_ptr<Source> source;
    KubeSource* kube = nullptr;  // the same object, when it is the Kubernetes API
};

// Opens the configured source. With the Kubernetes source and no nodeIP or
// uplink in cfg, waits (until stop) for this node's Node object, fills in
// its InternalIP and the device holding it, and hands that first snapshot
// on to the agent's first poll.
Result<StartedSource> start_source(AgentConfig& cfg, const std::atomic<bool>& stop);

// `skiff-agent install-cni --from FILE --to DIR`: FILE copied into DIR
// under its own name, mode 0755, by rename: a runtime never runs half a
// binary, and an old one keeps working until the new one is in place.
Status install_cni(const std::string& from, const std::string& to_dir);

}  // namespace skiff::agent
