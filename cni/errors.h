// CNI error codes (CNI spec, "Error" section) and the error value the
// plugin reports as {"cniVersion","code","msg","details"} on stdout.
#pragma once

#include <string>

#include "common/result.h"

namespace skiff::cni {

enum Code : int {
    kIncompatibleVersion = 1,   // CNI version not supported
    kUnsupportedField = 2,      // a config or CNI_ARGS field we do not support
    kUnknownContainer = 3,      // container (its netns) does not exist
    kInvalidEnv = 4,            // missing or invalid CNI_* environment
    kIoFailure = 5,             // state files could not be read or written
    kDecodeFailure = 6,         // stdin is not decodable JSON
    kInvalidConfig = 7,         // network config invalid
    kTryAgain = 11,             // transient: pool full, lock busy
    kNotAvailable = 50,         // STATUS: plugin not available
    kLimitedConnectivity = 51,  // STATUS: available with limited connectivity
    kInternal = 999,            // anything else
};

struct CniError {
    int code = kInternal;
    std::string msg;
    std::string details;
};

template <typename T>
using CniResult = Result<T, CniError>;
using CniStatus = Result<void, CniError>;

}  // namespace skiff::cni
