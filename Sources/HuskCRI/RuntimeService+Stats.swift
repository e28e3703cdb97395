import GRPCCore

// Container and sandbox stats and metrics. Until they are written each answers UNIMPLEMENTED.
extension RuntimeService {
    func containerStats(request: Runtime_V1_ContainerStatsRequest, context: ServerContext) async throws -> Runtime_V1_ContainerStatsResponse {
        throw CRIError.notImplemented("ContainerStats")
    }

    func listContainerStats(
        request: Runtime_V1_ListContainerStatsRequest, context: ServerContext
    ) async throws -> Runtime_V1_ListContainerStatsResponse {
        throw CRIError.notImplemented("ListContainerStats")
    }

    func streamContainerStats(
        request: Runtime_V1_StreamContainerStatsRequest, response: RPCWriter<Runtime_V1_StreamContainerStatsResponse>,
        context: ServerContext
    ) async throws {
        throw CRIError.notImplemented("StreamContainerStats")
    }

    func podSandboxStats(request: Runtime_V1_PodSandboxStatsRequest, context: ServerContext) async throws -> Runtime_V1_PodSandboxStatsResponse {
        throw CRIError.notImplemented("PodSandboxStats")
    }

    func listPodSandboxStats(
        request: Runtime_V1_ListPodSandboxStatsRequest, context: ServerContext
    ) async throws -> Runtime_V1_ListPodSandboxStatsResponse {
        throw CRIError.notImplemented("ListPodSandboxStats")
    }

    func streamPodSandboxStats(
        request: Runtime_V1_StreamPodSandboxStatsRequest, response: RPCWriter<Runtime_V1_StreamPodSandboxStatsResponse>,
        context: ServerContext
    ) async throws {
        throw CRIError.notImplemented("StreamPodSandboxStats")
    }

    func listMetricDescriptors(
        request: Runtime_V1_ListMetricDescriptorsRequest, context: ServerContext
    ) async throws -> Runtime_V1_ListMetricDescriptorsResponse {
        throw CRIError.notImplemented("ListMetricDescriptors")
    }

    func listPodSandboxMetrics(
        request: Runtime_V1_ListPodSandboxMetricsRequest, context: ServerContext
    ) async throws -> Runtime_V1_ListPodSandboxMetricsResponse {
        throw CRIError.notImplemented("ListPodSandboxMetrics")
    }

    func streamPodSandboxMetrics(
        request: Runtime_V1_StreamPodSandboxMetricsRequest, response: RPCWriter<Runtime_V1_StreamPodSandboxMetricsResponse>,
        context: ServerContext
    ) async throws {
        throw CRIError.notImplemented("StreamPodSandboxMetrics")
    }
}
