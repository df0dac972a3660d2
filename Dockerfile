# The manager-only image: nothing but /manager, for other images to copy.
#
#   make release
#   docker buildx build --platform linux/amd64,linux/arm64 -t flush-manager .
#
# and in a Dockerfile that uses it:
#
#   COPY --from=flush-manager /manager /manager
#
# TARGETARCH is set by BuildKit and by podman build for the platform being
# built; dist/ has a binary under each of its names.
FROM scratch
ARG TARGETARCH
COPY dist/manager-linux-${TARGETARCH} /manager
