# Copyright Netflix, Inc. Licensed under the Apache License, Version 2.0 (see tests/conformance/NOTICE).
# Vendored unmodified from Netflix/metaflow test/core/tests/custom_decorators.py at d2dd7f953574369d5b4715822b12377d44ba1cf8.
