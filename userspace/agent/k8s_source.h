// The Kubernetes API as a Source: Nodes, Services and EndpointSlices, each
// listed (paged) and then watched by a background thread into a cache;
// poll() turns the caches into a ClusterSpec when one of them changed.
#pragma once

#include <chrono>
#include <ctime>
#include <memory>
#include <string>
#include <vector>

#include "kube_client.h"
#include "source.h"

namespace skiff::agent {

struct KubeSourceOptions {
    KubeConfig kube;
    int page_limit = 500;
    // Each watch asks the server to end it after a random time in this range
    // (spreading re-watches out), and gives up itself watch_slack later.
    std::chrono::seconds watch_timeout_min{300}, watch_timeout_max{600};
    std::chrono::milliseconds watch_slack{std::chrono::seconds(30)};
    // Between failed attempts: exponential from initial to max, jittered.
    std::chrono::milliseconds backoff_initial{500}, backoff_max{std::chrono::seconds(30)};
};

struct KubeResourceStatus {
    std::string resource;          // nodes, services, endpointslices
    std::string path;              // the collection in use (v1, or v1beta1 slices)
    bool listed = false;           // a LIST has completed: the cache is served
    bool failing = false;          // the last list or watch attempt failed
    std::string resource_version;  // the last one seen
    size_t objects = 0;
    uint64_t lists = 0, watches = 0;  // completed LISTs, watch streams ended
    std::string last_error;           // the most recent failure (kept after recovery)
};

class KubeSource : public Source {
public:
    // Per resource, for describe(), health and tests.
    virtual std::vector<KubeResourceStatus> status() const = 0;
    // Patches nodes/<node>/status: condition NetworkUnavailable=False.
    virtual Status set_network_available(const std::string& node, const std::string& message) = 0;
};

// Starts the list/watch threads at once; poll() errors until every
// resource was listed if listing failed, nullopt while it is in progress.
Result<std::unique_ptr<KubeSource>> make_kubernetes_source(KubeSourceOptions opts);

// The strategic merge patch setting NetworkUnavailable=False (conditions
// merge by type), stamped `now`, and sending it.
std::string network_available_patch(const std::string& message, std::time_t now);
Status patch_network_available(KubeClient& client, const std::string& node, const std::string& message);

// A discovery.k8s.io/v1beta1 EndpointSlice rewritten as v1 (as the API
// server converts it): endpoints[].topology -> nodeName, zone, deprecatedTopology.
void endpoint_slice_v1beta1_to_v1(nlohmann::json& slice);

}  // namespace skiff::agent
