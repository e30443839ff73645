// What an export is (shared by the service contract and the core, which must not import grpc-js).
export interface ExportSpec { path: string; dfsa: number /* 0 = none, 1..8 */; readOnly: boolean; rootSquash: boolean }
