// Reading pinned maps (map_read.h).
#include "map_read.h"

#include <bpf/libbpf.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <set>

#include "datapath/pins.h"
#include "common/fd.h"
#include "common/files.h"

namespace skiff::ctl {
namespace {

bool per_cpu(uint32_t type) {
    return type == BPF_MAP_TYPE_PERCPU_HASH || type == BPF_MAP_TYPE_PERCPU_ARRAY ||
           type == BPF_MAP_TYPE_LRU_PERCPU_HASH || type == BPF_MAP_TYPE_PERCPU_CGROUP_STORAGE;
}

bool is_map(int fd) {
    char target[64] = {};
    std::string link = "/proc/self/fd/" + std::to_string(fd);
    return ::readlink(link.c_str(), target, sizeof(target) - 1) > 0 && std::string(target) == "anon_inode:bpf-map";
}

// Names of the maps pinned in the pin dir (programs and links left out).
Result<std::vector<std::string>> pinned_maps(const Options& o) {
    auto files = list_dir(o.pin_path);
    if (!files) return explain(files.error(), o);
    std::vector<std::string> out;
    for (const auto& f : *files) {
        UniqueFd fd(bpf_obj_get((o.pin_path + "/" + f).c_str()));
        if (!fd.valid()) {
            // For root, EACCES here means "not a bpf object" (pin path not on bpffs).
            if (errno == EPERM || (errno == EACCES && ::geteuid() != 0))
                return explain(Error::errno_("open " + o.pin_path + "/" + f), o);
            continue;
        }
        if (is_map(fd.get())) out.push_back(f);
    }
    std::sort(out.begin(), out.end());
    return out;
}

std::string list_str(const std::vector<std::string>& names) {
    std::string s;
    for (const auto& n : names) s += (s.empty() ? "" : ", ") + n;
    return s;
}

// A map that could not be found: no maps at all, or which ones there are.
Error missing(const Options& o, const std::string& name) {
    auto maps = pinned_maps(o);
    if (!maps) return maps.error();
    if (maps->empty()) return explain(Error{ENOENT, name}, o);
    return Error{ENOENT, "no map '" + name + "' pinned in " + o.pin_path + "; pinned maps: " + list_str(*maps)};
}

}  // namespace

std::string type_name(uint32_t type) {
    const char* s = libbpf_bpf_map_type_str(static_cast<bpf_map_type>(type));
    return s ? s : "type " + std::to_string(type);
}

Result<MapData> read_map(const Options& o, const std::string& name) {
    auto fd = datapath::open_pinned_map(o.pin_path, name);
    if (!fd) {
        // For root, EACCES means "not a bpf object" (a pin path not on bpffs).
        const int err = fd.error().code;
        return err == ENOENT || (err == EACCES && ::geteuid() == 0) ? missing(o, name) : explain(fd.error(), o);
    }
    if (!is_map(fd->get())) {
        auto maps = pinned_maps(o);
        return Error::invalid("'" + name + "' in " + o.pin_path + " is not a map" +
                              (maps && !maps->empty() ? "; pinned maps: " + list_str(*maps) : ""));
    }
    MapData m{name};
    uint32_t len = sizeof(m.info);
    if (int err = bpf_obj_get_info_by_fd(fd->get(), &m.info, &len); err)
        return explain(Error::os(-err, "read info of map " + name), o);
    if (m.info.key_size == 0)
        return Error{EOPNOTSUPP, name + " is a " + type_name(m.info.type) + " map: it has no entries to dump"};
    m.percpu = per_cpu(m.info.type);
    const int ncpu = m.percpu ? libbpf_num_possible_cpus() : 1;
    if (ncpu <= 0) return Error::os(-ncpu, "count possible CPUs");
    const size_t stride = m.percpu ? (m.info.value_size + 7) / 8 * 8 : m.info.value_size;
    Bytes cur(m.info.key_size), next(m.info.key_size), val(stride * static_cast<size_t>(ncpu));
    std::set<Bytes> seen;
    const void* prev = nullptr;
    for (size_t steps = 0; steps < 2 * static_cast<size_t>(m.info.max_entries) + 16; ++steps) {
        if (bpf_map_get_next_key(fd->get(), prev, next.data()) != 0) {
            if (errno == ENOENT) return m;
            return explain(Error::errno_("iterate map " + name), o);
        }
        cur = next;
        prev = cur.data();
        if (!seen.insert(next).second) continue;  // a deleted key restarts the walk
        if (bpf_map_lookup_elem(fd->get(), next.data(), val.data()) != 0) {
            if (errno == ENOENT) continue;  // deleted meanwhile
            return explain(Error::errno_("read map " + name), o);
        }
        auto& e = m.entries.emplace_back(next, std::vector<Bytes>{});
        for (size_t c = 0; c < static_cast<size_t>(ncpu); ++c)
            e.second.emplace_back(val.begin() + static_cast<long>(c * stride),
                                  val.begin() + static_cast<long>(c * stride + m.info.value_size));
    }
    return Error{EAGAIN, "map " + name + " kept changing while it was read; try again"};
}

}  // namespace skiff::ctl
