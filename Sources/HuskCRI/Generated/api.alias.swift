// DO NOT EDIT. Made by Scripts/gen-cri.sh from api.grpc.swift: each service's generated
// registerMethods(with:), registering the same handlers under the package given.

import GRPCCore
import GRPCProtobuf

extension Runtime_V1_RuntimeService.StreamingServiceProtocol {
    public func registerMethods<Transport>(with router: inout GRPCCore.RPCRouter<Transport>, package: String) where Transport: GRPCCore.ServerTransport {
        router.registerHandler(
            forMethod: Runtime_V1_RuntimeService.Method.Version.descriptor.inPackage(package),
            deserializer: GRPCProtobuf.ProtobufDeserializer<Runtime_V1_VersionRequest>(),
            serializer: GRPCProtobuf.ProtobufSerializer<Runtime_V1_VersionResponse>(),
            handler: { request, context in
                try await self.version(
                    request: request,
                    context: context
                )
            }
        )
        router.registerHandler(
            forMethod: Runtime_V1_RuntimeService.Method.RunPodSandbox.descriptor.inPackage(package),
            deserializer: GRPCProtobuf.ProtobufDeserializer<Runtime_V1_RunPodSandboxRequest>(),
            serializer: GRPCProtobuf.ProtobufSerializer<Runtime_V1_RunPodSandboxResponse>(),
            handler: { request, context in
                try await self.runPodSandbox(
                    request: request,
                    context: context
                )
            }
        )
        router.registerHandler(
            forMethod: Runtime_V1_RuntimeService.Method.StopPodSandbox.descriptor.inPackage(package),
            deserializer: GRPCProtobuf.ProtobufDeserializer<Runtime_V1_StopPodSandboxRequest>(),
            serializer: GRPCProtobuf.ProtobufSerializer<Runtime_V1_StopPodSandboxResponse>(),
            handler: { request, context in
                try await self.stopPodSandbox(
                    request: request,
                    context: context
                )
            }
        )
        router.registerHandler(
            forMethod: Runtime_V1_RuntimeService.Method.RemovePodSandbox.descriptor.inPackage(package),
            deserializer: GRPCProtobuf.ProtobufDeserializer<Runtime_V1_RemovePodSandboxRequest>(),
            serializer: GRPCProtobuf.ProtobufSerializer<Runtime_V1_RemovePodSandboxResponse>(),
            handler: { request, context in
                try await self.removePodSandbox(
                    request: request,
                    context: context
                )
            }
        )
        router.registerHandler(
            forMethod: Runtime_V1_RuntimeService.Method.PodSandboxStatus.descriptor.inPackage(package),
            deserializer: GRPCProtobuf.ProtobufDeserializer<Runtime_V1_PodSandboxStatusRequest>(),
            serializer: GRPCProtobuf.ProtobufSerializer<Runtime_V1_PodSandboxStatusResponse>(),
            handler: { request, context in
                try await self.podSandboxStatus(
                    request: request,
                    context: context
                )
            }
        )
        router.registerHandler(
            forMethod: Runtime_V1_RuntimeService.Method.ListPodSandbox.descriptor.inPackage(package),
            deserializer: GRPCProtobuf.ProtobufDeserializer<Runtime_V1_ListPodSandboxRequest>(),
            serializer: GRPCProtobuf.ProtobufSerializer<Runtime_V1_ListPodSandboxResponse>(),
            handler: { request, context in
                try await self.listPodSandbox(
                    request: request,
                    context: context
                )
            }
        )
        router.registerHandler(
            forMethod: Runtime_V1_RuntimeService.Method.StreamPodSandboxes.descriptor.inPackage(package),
            deserializer: GRPCProtobuf.ProtobufDeserializer<Runtime_V1_StreamPodSandboxesRequest>(),
            serializer: GRPCProtobuf.ProtobufSerializer<Runtime_V1_StreamPodSandboxesResponse>(),
            handler: { request, context in
                try await self.streamPodSandboxes(
                    request: request,
                    context: context
                )
            }
        )
        router.registerHandler(
            forMethod: Runtime_V1_RuntimeService.Method.CreateContainer.descriptor.inPackage(package),
            deserializer: GRPCProtobuf.ProtobufDeserializer<Runtime_V1_CreateContainerRequest>(),
            serializer: GRPCProtobuf.ProtobufSerializer<Runtime_V1_CreateContainerResponse>(),
            handler: { request, context in
                try await self.createContainer(
                    request: request,
                    context: context
                )
            }
        )
        router.registerHandler(
            forMethod: Runtime_V1_RuntimeService.Method.StartContainer.descriptor.inPackage(package),
            deserializer: GRPCProtobuf.ProtobufDeserializer<Runtime_V1_StartContainerRequest>(),
            serializer: GRPCProtobuf.ProtobufSerializer<Runtime_V1_StartContainerResponse>(),
            handler: { request, context in
                try await self.startContainer(
                    request: request,
                    context: context
                )
            }
        )
        router.registerHandler(
            forMethod: Runtime_V1_RuntimeService.Method.StopContainer.descriptor.inPackage(package),
            deserializer: GRPCProtobuf.ProtobufDeserializer<Runtime_V1_StopContainerRequest>(),
            serializer: GRPCProtobuf.ProtobufSerializer<Runtime_V1_StopContainerResponse>(),
            handler: { request, context in
                try await self.stopContainer(
                    request: request,
                    context: context
                )
            }
        )
        router.registerHandler(
            forMethod: Runtime_V1_RuntimeService.Method.RemoveContainer.descriptor.inPackage(package),
            deserializer: GRPCProtobuf.ProtobufDeserializer<Runtime_V1_RemoveContainerRequest>(),
            serializer: GRPCProtobuf.ProtobufSerializer<Runtime_V1_RemoveContainerResponse>(),
            handler: { request, context in
                try await self.removeContainer(
                    request: request,
                    context: context
                )
            }
        )
        router.registerHandler(
            forMethod: Runtime_V1_RuntimeService.Method.ListContainers.descriptor.inPackage(package),
            deserializer: GRPCProtobuf.ProtobufDeserializer<Runtime_V1_ListContainersRequest>(),
            serializer: GRPCProtobuf.ProtobufSerializer<Runtime_V1_ListContainersResponse>(),
            handler: { request, context in
                try await self.listContainers(
                    request: request,
                    context: context
                )
            }
        )
        router.registerHandler(
            forMethod: Runtime_V1_RuntimeService.Method.StreamContainers.descriptor.inPackage(package),
            deserializer: GRPCProtobuf.ProtobufDeserializer<Runtime_V1_StreamContainersRequest>(),
            serializer: GRPCProtobuf.ProtobufSerializer<Runtime_V1_StreamContainersResponse>(),
            handler: { request, context in
                try await self.streamContainers(
                    request: request,
                    context: context
                )
            }
        )
        router.registerHandler(
            forMethod: Runtime_V1_RuntimeService.Method.ContainerStatus.descriptor.inPackage(package),
            deserializer: GRPCProtobuf.ProtobufDeserializer<Runtime_V1_ContainerStatusRequest>(),
            serializer: GRPCProtobuf.ProtobufSerializer<Runtime_V1_ContainerStatusResponse>(),
            handler: { request, context in
                try await self.containerStatus(
                    request: request,
                    context: context
                )
            }
        )
        router.registerHandler(
            forMethod: Runtime_V1_RuntimeService.Method.UpdateContainerResources.descriptor.inPackage(package),
            deserializer: GRPCProtobuf.ProtobufDeserializer<Runtime_V1_UpdateContainerResourcesRequest>(),
            serializer: GRPCProtobuf.ProtobufSerializer<Runtime_V1_UpdateContainerResourcesResponse>(),
            handler: { request, context in
                try await self.updateContainerResources(
                    request: request,
                    context: context
                )
            }
        )
        router.registerHandler(
            forMethod: Runtime_V1_RuntimeService.Method.ReopenContainerLog.descriptor.inPackage(package),
            deserializer: GRPCProtobuf.ProtobufDeserializer<Runtime_V1_ReopenContainerLogRequest>(),
            serializer: GRPCProtobuf.ProtobufSerializer<Runtime_V1_ReopenContainerLogResponse>(),
            handler: { request, context in
                try await self.reopenContainerLog(
                    request: request,
                    context: context
                )
            }
        )
        router.registerHandler(
            forMethod: Runtime_V1_RuntimeService.Method.ExecSync.descriptor.inPackage(package),
            deserializer: GRPCProtobuf.ProtobufDeserializer<Runtime_V1_ExecSyncRequest>(),
            serializer: GRPCProtobuf.ProtobufSerializer<Runtime_V1_ExecSyncResponse>(),
            handler: { request, context in
                try await self.execSync(
                    request: request,
                    context: context
                )
            }
        )
        router.registerHandler(
            forMethod: Runtime_V1_RuntimeService.Method.Exec.descriptor.inPackage(package),
            deserializer: GRPCProtobuf.ProtobufDeserializer<Runtime_V1_ExecRequest>(),
            serializer: GRPCProtobuf.ProtobufSerializer<Runtime_V1_ExecResponse>(),
            handler: { request, context in
                try await self.exec(
                    request: request,
                    context: context
                )
            }
        )
        router.registerHandler(
            forMethod: Runtime_V1_RuntimeService.Method.Attach.descriptor.inPackage(package),
            deserializer: GRPCProtobuf.ProtobufDeserializer<Runtime_V1_AttachRequest>(),
            serializer: GRPCProtobuf.ProtobufSerializer<Runtime_V1_AttachResponse>(),
            handler: { request, context in
                try await self.attach(
                    request: request,
                    context: context
                )
            }
        )
        router.registerHandler(
            forMethod: Runtime_V1_RuntimeService.Method.PortForward.descriptor.inPackage(package),
            deserializer: GRPCProtobuf.ProtobufDeserializer<Runtime_V1_PortForwardRequest>(),
            serializer: GRPCProtobuf.ProtobufSerializer<Runtime_V1_PortForwardResponse>(),
            handler: { request, context in
                try await self.portForward(
                    request: request,
                    context: context
                )
            }
        )
        router.registerHandler(
            forMethod: Runtime_V1_RuntimeService.Method.ContainerStats.descriptor.inPackage(package),
            deserializer: GRPCProtobuf.ProtobufDeserializer<Runtime_V1_ContainerStatsRequest>(),
            serializer: GRPCProtobuf.ProtobufSerializer<Runtime_V1_ContainerStatsResponse>(),
            handler: { request, context in
                try await self.containerStats(
                    request: request,
                    context: context
                )
            }
        )
        router.registerHandler(
            forMethod: Runtime_V1_RuntimeService.Method.ListContainerStats.descriptor.inPackage(package),
            deserializer: GRPCProtobuf.ProtobufDeserializer<Runtime_V1_ListContainerStatsRequest>(),
            serializer: GRPCProtobuf.ProtobufSerializer<Runtime_V1_ListContainerStatsResponse>(),
            handler: { request, context in
                try await self.listContainerStats(
                    request: request,
                    context: context
                )
            }
        )
        router.registerHandler(
            forMethod: Runtime_V1_RuntimeService.Method.StreamContainerStats.descriptor.inPackage(package),
            deserializer: GRPCProtobuf.ProtobufDeserializer<Runtime_V1_StreamContainerStatsRequest>(),
            serializer: GRPCProtobuf.ProtobufSerializer<Runtime_V1_StreamContainerStatsResponse>(),
            handler: { request, context in
                try await self.streamContainerStats(
                    request: request,
                    context: context
                )
            }
        )
        router.registerHandler(
            forMethod: Runtime_V1_RuntimeService.Method.PodSandboxStats.descriptor.inPackage(package),
            deserializer: GRPCProtobuf.ProtobufDeserializer<Runtime_V1_PodSandboxStatsRequest>(),
            serializer: GRPCProtobuf.ProtobufSerializer<Runtime_V1_PodSandboxStatsResponse>(),
            handler: { request, context in
                try await self.podSandboxStats(
                    request: request,
                    context: context
                )
            }
        )
        router.registerHandler(
            forMethod: Runtime_V1_RuntimeService.Method.ListPodSandboxStats.descriptor.inPackage(package),
            deserializer: GRPCProtobuf.ProtobufDeserializer<Runtime_V1_ListPodSandboxStatsRequest>(),
            serializer: GRPCProtobuf.ProtobufSerializer<Runtime_V1_ListPodSandboxStatsResponse>(),
            handler: { request, context in
                try await self.listPodSandboxStats(
                    request: request,
                    context: context
                )
            }
        )
        router.registerHandler(
            forMethod: Runtime_V1_RuntimeService.Method.StreamPodSandboxStats.descriptor.inPackage(package),
            deserializer: GRPCProtobuf.ProtobufDeserializer<Runtime_V1_StreamPodSandboxStatsRequest>(),
            serializer: GRPCProtobuf.ProtobufSerializer<Runtime_V1_StreamPodSandboxStatsResponse>(),
            handler: { request, context in
                try await self.streamPodSandboxStats(
                    request: request,
                    context: context
                )
            }
        )
        router.registerHandler(
            forMethod: Runtime_V1_RuntimeService.Method.UpdateRuntimeConfig.descriptor.inPackage(package),
            deserializer: GRPCProtobuf.ProtobufDeserializer<Runtime_V1_UpdateRuntimeConfigRequest>(),
            serializer: GRPCProtobuf.ProtobufSerializer<Runtime_V1_UpdateRuntimeConfigResponse>(),
            handler: { request, context in
                try await self.updateRuntimeConfig(
                    request: request,
                    context: context
                )
            }
        )
        router.registerHandler(
            forMethod: Runtime_V1_RuntimeService.Method.Status.descriptor.inPackage(package),
            deserializer: GRPCProtobuf.ProtobufDeserializer<Runtime_V1_StatusRequest>(),
            serializer: GRPCProtobuf.ProtobufSerializer<Runtime_V1_StatusResponse>(),
            handler: { request, context in
                try await self.status(
                    request: request,
                    context: context
                )
            }
        )
        router.registerHandler(
            forMethod: Runtime_V1_RuntimeService.Method.CheckpointContainer.descriptor.inPackage(package),
            deserializer: GRPCProtobuf.ProtobufDeserializer<Runtime_V1_CheckpointContainerRequest>(),
            serializer: GRPCProtobuf.ProtobufSerializer<Runtime_V1_CheckpointContainerResponse>(),
            handler: { request, context in
                try await self.checkpointContainer(
                    request: request,
                    context: context
                )
            }
        )
        router.registerHandler(
            forMethod: Runtime_V1_RuntimeService.Method.CheckpointPod.descriptor.inPackage(package),
            deserializer: GRPCProtobuf.ProtobufDeserializer<Runtime_V1_CheckpointPodRequest>(),
            serializer: GRPCProtobuf.ProtobufSerializer<Runtime_V1_CheckpointPodResponse>(),
            handler: { request, context in
                try await self.checkpointPod(
                    request: request,
                    context: context
                )
            }
        )
        router.registerHandler(
            forMethod: Runtime_V1_RuntimeService.Method.RestorePod.descriptor.inPackage(package),
            deserializer: GRPCProtobuf.ProtobufDeserializer<Runtime_V1_RestorePodRequest>(),
            serializer: GRPCProtobuf.ProtobufSerializer<Runtime_V1_RestorePodResponse>(),
            handler: { request, context in
                try await self.restorePod(
                    request: request,
                    context: context
                )
            }
        )
        router.registerHandler(
            forMethod: Runtime_V1_RuntimeService.Method.GetContainerEvents.descriptor.inPackage(package),
            deserializer: GRPCProtobuf.ProtobufDeserializer<Runtime_V1_GetEventsRequest>(),
            serializer: GRPCProtobuf.ProtobufSerializer<Runtime_V1_ContainerEventResponse>(),
            handler: { request, context in
                try await self.getContainerEvents(
                    request: request,
                    context: context
                )
            }
        )
        router.registerHandler(
            forMethod: Runtime_V1_RuntimeService.Method.ListMetricDescriptors.descriptor.inPackage(package),
            deserializer: GRPCProtobuf.ProtobufDeserializer<Runtime_V1_ListMetricDescriptorsRequest>(),
            serializer: GRPCProtobuf.ProtobufSerializer<Runtime_V1_ListMetricDescriptorsResponse>(),
            handler: { request, context in
                try await self.listMetricDescriptors(
                    request: request,
                    context: context
                )
            }
        )
        router.registerHandler(
            forMethod: Runtime_V1_RuntimeService.Method.ListPodSandboxMetrics.descriptor.inPackage(package),
            deserializer: GRPCProtobuf.ProtobufDeserializer<Runtime_V1_ListPodSandboxMetricsRequest>(),
            serializer: GRPCProtobuf.ProtobufSerializer<Runtime_V1_ListPodSandboxMetricsResponse>(),
            handler: { request, context in
                try await self.listPodSandboxMetrics(
                    request: request,
                    context: context
                )
            }
        )
        router.registerHandler(
            forMethod: Runtime_V1_RuntimeService.Method.StreamPodSandboxMetrics.descriptor.inPackage(package),
            deserializer: GRPCProtobuf.ProtobufDeserializer<Runtime_V1_StreamPodSandboxMetricsRequest>(),
            serializer: GRPCProtobuf.ProtobufSerializer<Runtime_V1_StreamPodSandboxMetricsResponse>(),
            handler: { request, context in
                try await self.streamPodSandboxMetrics(
                    request: request,
                    context: context
                )
            }
        )
        router.registerHandler(
            forMethod: Runtime_V1_RuntimeService.Method.RuntimeConfig.descriptor.inPackage(package),
            deserializer: GRPCProtobuf.ProtobufDeserializer<Runtime_V1_RuntimeConfigRequest>(),
            serializer: GRPCProtobuf.ProtobufSerializer<Runtime_V1_RuntimeConfigResponse>(),
            handler: { request, context in
                try await self.runtimeConfig(
                    request: request,
                    context: context
                )
            }
        )
        router.registerHandler(
            forMethod: Runtime_V1_RuntimeService.Method.UpdatePodSandboxResources.descriptor.inPackage(package),
            deserializer: GRPCProtobuf.ProtobufDeserializer<Runtime_V1_UpdatePodSandboxResourcesRequest>(),
            serializer: GRPCProtobuf.ProtobufSerializer<Runtime_V1_UpdatePodSandboxResourcesResponse>(),
            handler: { request, context in
                try await self.updatePodSandboxResources(
                    request: request,
                    context: context
                )
            }
        )
    }
}

extension Runtime_V1_ImageService.StreamingServiceProtocol {
    public func registerMethods<Transport>(with router: inout GRPCCore.RPCRouter<Transport>, package: String) where Transport: GRPCCore.ServerTransport {
        router.registerHandler(
            forMethod: Runtime_V1_ImageService.Method.ListImages.descriptor.inPackage(package),
            deserializer: GRPCProtobuf.ProtobufDeserializer<Runtime_V1_ListImagesRequest>(),
            serializer: GRPCProtobuf.ProtobufSerializer<Runtime_V1_ListImagesResponse>(),
            handler: { request, context in
                try await self.listImages(
                    request: request,
                    context: context
                )
            }
        )
        router.registerHandler(
            forMethod: Runtime_V1_ImageService.Method.StreamImages.descriptor.inPackage(package),
            deserializer: GRPCProtobuf.ProtobufDeserializer<Runtime_V1_StreamImagesRequest>(),
            serializer: GRPCProtobuf.ProtobufSerializer<Runtime_V1_StreamImagesResponse>(),
            handler: { request, context in
                try await self.streamImages(
                    request: request,
                    context: context
                )
            }
        )
        router.registerHandler(
            forMethod: Runtime_V1_ImageService.Method.ImageStatus.descriptor.inPackage(package),
            deserializer: GRPCProtobuf.ProtobufDeserializer<Runtime_V1_ImageStatusRequest>(),
            serializer: GRPCProtobuf.ProtobufSerializer<Runtime_V1_ImageStatusResponse>(),
            handler: { request, context in
                try await self.imageStatus(
                    request: request,
                    context: context
                )
            }
        )
        router.registerHandler(
            forMethod: Runtime_V1_ImageService.Method.PullImage.descriptor.inPackage(package),
            deserializer: GRPCProtobuf.ProtobufDeserializer<Runtime_V1_PullImageRequest>(),
            serializer: GRPCProtobuf.ProtobufSerializer<Runtime_V1_PullImageResponse>(),
            handler: { request, context in
                try await self.pullImage(
                    request: request,
                    context: context
                )
            }
        )
        router.registerHandler(
            forMethod: Runtime_V1_ImageService.Method.RemoveImage.descriptor.inPackage(package),
            deserializer: GRPCProtobuf.ProtobufDeserializer<Runtime_V1_RemoveImageRequest>(),
            serializer: GRPCProtobuf.ProtobufSerializer<Runtime_V1_RemoveImageResponse>(),
            handler: { request, context in
                try await self.removeImage(
                    request: request,
                    context: context
                )
            }
        )
        router.registerHandler(
            forMethod: Runtime_V1_ImageService.Method.ImageFsInfo.descriptor.inPackage(package),
            deserializer: GRPCProtobuf.ProtobufDeserializer<Runtime_V1_ImageFsInfoRequest>(),
            serializer: GRPCProtobuf.ProtobufSerializer<Runtime_V1_ImageFsInfoResponse>(),
            handler: { request, context in
                try await self.imageFsInfo(
                    request: request,
                    context: context
                )
            }
        )
    }
}
