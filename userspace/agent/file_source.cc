#include <sys/stat.h>

#include "common/files.h"
#include "source.h"

namespace skiff::agent {
namespace {

struct Stamp {
    dev_t dev = 0;
    ino_t ino = 0;
    off_t size = -1;
    long long mtime_ns = -1;
    bool operator==(const Stamp&) const = default;
};

class FileSource final : public Source {
public:
    explicit FileSource(std::string path) : path_(std::move(path)) {}

    Result<std::optional<ClusterSpec>> poll() override {
        struct stat st {};
        if (::stat(path_.c_str(), &st) != 0) return Error::errno_("source file " + path_);
        Stamp s{st.st_dev, st.st_ino, st.st_size,
                static_cast<long long>(st.st_mtim.tv_sec) * 1000000000LL + st.st_mtim.tv_nsec};
        if (seen_ && s == last_) return std::optional<ClusterSpec>{};
        auto text = read_file(path_, 64u << 20);
        if (!text) return text.error();
        auto spec = parse_kube_list(*text);
        if (!spec) return spec.error().wrap("source file " + path_);
        spec->services.reuse_unchanged(prev_.services);
        spec->endpoint_slices.reuse_unchanged(prev_.endpoint_slices);
        spec->number_after(prev_);
        prev_ = *spec;
        last_ = s;
        seen_ = true;
        return std::optional<ClusterSpec>{std::move(*spec)};
    }

    std::string describe() const override { return "file " + path_; }

private:
    std::string path_;
    Stamp last_;
    ClusterSpec prev_;  // the last snapshot, so unchanged objects keep their pointers
    bool seen_ = false;
};

}  // namespace

std::unique_ptr<Source> make_file_source(std::string path) { return std::make_unique<FileSource>(std::move(path)); }

}  // namespace skiff::agent
