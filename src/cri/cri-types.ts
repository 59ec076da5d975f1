// The CRI messages frakti's handlers read and write, as @grpc/proto-loader
// presents them (see PROTO_LOADER_OPTIONS in proto.ts): field names as in
// api.proto, int64/uint64 as decimal strings, enums as their names, unset
// sub-messages as null. Only the messages in use are typed here.

export type Int64 = string;
export type StringMap = Record<string, string>;

export interface Int64Value {
  value: Int64;
}

export interface UInt64Value {
  value: Int64;
}

// --- runtime info ---

export interface VersionRequest {
  version: string;
}

export interface VersionResponse {
  version: string;
  runtime_name: string;
  runtime_version: string;
  runtime_api_version: string;
}

export interface StatusRequest {
  verbose: boolean;
}

export interface RuntimeCondition {
  type: string;
  status: boolean;
  reason: string;
  message: string;
}

export interface RuntimeHandler {
  name: string;
  features: { recursive_read_only_mounts: boolean; user_namespaces: boolean } | null;
}

export interface StatusResponse {
  status: { conditions: RuntimeCondition[] } | null;
  info: StringMap;
  runtime_handlers: RuntimeHandler[];
  features: { supplemental_groups_policy: boolean; user_namespaces_host_network: boolean; mount_options: boolean } | null;
}

export type CgroupDriver = 'SYSTEMD' | 'CGROUPFS';

export interface RuntimeConfigResponse {
  linux: { cgroup_driver: CgroupDriver } | null;
}

// --- images ---

export interface ImageSpec {
  image: string;
  annotations: StringMap;
  user_specified_image: string;
  runtime_handler: string;
  image_ref: string;
}

export interface Image {
  id: string;
  repo_tags: string[];
  repo_digests: string[];
  size: Int64;
  uid: Int64Value | null;
  username: string;
  spec: ImageSpec | null;
  pinned: boolean;
}

export interface AuthConfig {
  username: string;
  password: string;
  auth: string;
  server_address: string;
  identity_token: string;
  registry_token: string;
}

export interface PullImageRequest {
  image: ImageSpec | null;
  auth: AuthConfig | null;
  sandbox_config: unknown;
}

export interface PullImageResponse {
  image_ref: string;
}

export interface ListImagesRequest {
  filter: { image: ImageSpec | null } | null;
}

export interface ListImagesResponse {
  images: Image[];
}

export interface ImageStatusRequest {
  image: ImageSpec | null;
  verbose: boolean;
}

export interface ImageStatusResponse {
  image: Image | null;
  info: StringMap;
}

export interface RemoveImageRequest {
  image: ImageSpec | null;
}

export interface FilesystemUsage {
  timestamp: Int64;
  fs_id: { mountpoint: string } | null;
  used_bytes: UInt64Value | null;
  inodes_used: UInt64Value | null;
}

export interface ImageFsInfoResponse {
  image_filesystems: FilesystemUsage[];
  container_filesystems: FilesystemUsage[];
}
