/**
 * The Docker Engine `POST /containers/create` body, as far as the sandbox uses it. Declared here (not
 * imported from dockerode) so the compiler stays pure; `sandbox/` passes it to the engine as is.
 */
export interface MountSpec {
  Type: 'bind' | 'volume' | 'tmpfs';
  Source?: string;
  Target: string;
  ReadOnly: boolean;
  BindOptions?: { Propagation: 'rprivate' };
  VolumeOptions?: { NoCopy?: boolean; Labels?: Record<string, string>; DriverConfig?: { Name: string; Options: Record<string, string> } };
  TmpfsOptions?: { SizeBytes: number; Mode: number };
}

export interface HostConfigSpec {
  ReadonlyRootfs: true;
  CapDrop: ['ALL'];
  CapAdd: [];
  SecurityOpt: string[];
  Privileged: false;
  NetworkMode: 'none' | 'bridge';
  IpcMode: 'private';
  PidMode: '';
  UTSMode: '';
  UsernsMode: '';
  CgroupParent: '';
  PidsLimit: number;
  Memory: number;
  MemorySwap: number;
  NanoCpus: number;
  Ulimits: { Name: string; Soft: number; Hard: number }[];
  Tmpfs: Record<string, string>;
  Mounts: MountSpec[];
  Devices: [];
  Init: true;
  AutoRemove: false;
}

export interface ContainerSpec {
  Image: string;
  User: string;
  WorkingDir: string;
  Env: string[];
  Cmd?: string[];
  Labels: Record<string, string>;
  Tty: false;
  OpenStdin: false;
  StdinOnce: false;
  AttachStdin: false;
  AttachStdout: true;
  AttachStderr: true;
  NetworkDisabled: boolean;
  HostConfig: HostConfigSpec;
}

/** Parse a Docker-style size ('512m', '2g', '1024') into bytes. */
export function parseSize(size: string): number {
  const match = /^(\d+(?:\.\d+)?)([kmg]?)$/i.exec(size.trim());
  if (!match) throw new Error(`not a size: ${size}`);
  const unit = { '': 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3 }[match[2]!.toLowerCase() as '' | 'k' | 'm' | 'g'];
  return Math.floor(Number(match[1]) * unit);
}
