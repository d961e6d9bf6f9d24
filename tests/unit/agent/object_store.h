// A fake source's object store for planner tests: snapshots keep the
// pointers of unchanged objects and are numbered, as the file and etcd
// sources do.
#pragma once

#include <map>
#include <string>

#include <nlohmann/json.hpp>

#include "agent/cluster.h"

namespace skiff::agent {

struct Objects {
    std::map<std::string, nlohmann::json> services, slices;
    ClusterSpec prev;
    ClusterSpec snapshot() {
        ClusterSpec c;
        for (const auto& [k, j] : services) c.services.add(j);
        for (const auto& [k, j] : slices) c.endpoint_slices.add(j);
        c.services.reuse_unchanged(prev.services);
        c.endpoint_slices.reuse_unchanged(prev.endpoint_slices);
        c.number_after(prev);
        prev = c;
        return c;
    }
};

}  // namespace skiff::agent
