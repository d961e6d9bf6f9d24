// A node's pin directory on bpffs: mounting bpffs when needed, an exclusive
// lock for loaders, and loading programs once per object version (pinned
// under a name carrying a hash of the embedded object).
#pragma once

#include <chrono>
#include <string>

#include "common/fd.h"
#include "common/result.h"
#include "objects.h"

namespace skiff::datapath {

// Why pin_dir cannot hold pins, or "" when it can: it must lie on a bpffs
// mount, or below /sys/fs/bpf while nothing at all is mounted there. Only
// looks; creates and mounts nothing.
std::string pin_dir_problem(const std::string& pin_dir);

// Create pin_dir once pin_dir_problem() has no objection, mounting bpffs at
// /sys/fs/bpf first if nothing is mounted there. bpffs is mounted nowhere
// else, so a mistyped path can never hide a directory.
Status ensure_pin_dir(const std::string& pin_dir);

// An exclusive lock on the pin directory itself (flock on the dir fd).
class PinDirLock {
public:
    static Result<PinDirLock> acquire(const std::string& pin_dir, std::chrono::milliseconds timeout);

private:
    explicit PinDirLock(UniqueFd fd) : fd_(std::move(fd)) {}
    UniqueFd fd_;
};

// "prog_from_pod_<12 hex digits of the object's hash>"
std::string program_pin_name(Program p);

// The pinned program for p, loading and pinning it (with its maps) first
// if this object version is not pinned yet. Safe against concurrent callers.
Result<UniqueFd> pinned_program(Program p, const std::string& pin_dir);

// Open a pinned map by name; ENOENT with a helpful message if absent.
Result<UniqueFd> open_pinned_map(const std::string& pin_dir, const std::string& name);

}  // namespace skiff::datapath
