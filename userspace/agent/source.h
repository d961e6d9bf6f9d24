// Where the agent learns the cluster from. All sources look alike to the
// main loop: poll() returns a new snapshot when something changed.
#pragma once

#include <memory>
#include <optional>
#include <string>

#include "cluster.h"
#include "common/result.h"

namespace skiff::agent {

class Source {
public:
    virtual ~Source() = default;
    // A snapshot when the source changed (or on the first call), nullopt
    // when nothing changed, an error when the source is unreadable or
    // malformed (the caller keeps its last good state and retries).
    virtual Result<std::optional<ClusterSpec>> poll() = 0;
    virtual std::string describe() const = 0;
};

// A file holding a kubectl-style List, re-read when its inode, size or
// modification time changes.
std::unique_ptr<Source> make_file_source(std::string path);

}  // namespace skiff::agent
