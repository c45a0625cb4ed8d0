#!/bin/sh
# .apk post-install: Alpine packages do not enable or start services.
echo "ntptool: edit /etc/ntptool.toml, then: rc-update add ntptool default && rc-service ntptool start"
exit 0
